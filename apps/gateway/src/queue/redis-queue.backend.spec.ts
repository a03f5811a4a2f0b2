import { HAVE_REDIS_SERVER, startRedisServer, type RedisServer } from '../../testing/redis-server.js';
import { waitFor } from '../../testing/wait-for.js';
import { loadConfig } from '../config/app-config.js';
import { QueueFullError, QueueUnavailableError } from '../errors/domain.errors.js';
import type { JobEvent } from './job.events.js';
import { JobEvents } from './job.events.js';
import { JobStore } from './job.store.js';
import type { GenerationParams } from './job.types.js';
import { queueBackendContract, type ContractOptions } from './queue-backend.contract.js';
import type { ClaimContext, JobPayload } from './queue-backend.js';
import { RedisJobRecords } from './redis-job.records.js';
import { RedisQueueBackend, commandConnection } from './redis-queue.backend.js';

let server: RedisServer;
let made = 0;

interface Gateway {
  readonly backend: RedisQueueBackend;
  readonly store: JobStore;
  /** Stops it as a gateway that stops (or dies: its held jobs keep their locks until they lapse). */
  close(): Promise<void>;
}

const DEFAULTS: ContractOptions = { queueMax: 64, queueTimeoutMs: 60_000, schedulerMaxDelayMs: 0 };

/** A gateway's backend on `prefix` (gateways on one prefix share the queue). */
async function gateway(
  prefix: string,
  origin: string,
  options: Partial<ContractOptions & { lockMs: number }> = {},
): Promise<Gateway> {
  const redis = commandConnection(server.url);
  await new Promise((resolve) => redis.once('ready', resolve));
  const store = new JobStore(loadConfig({}), new JobEvents());
  const records = new RedisJobRecords(store, redis, { prefix, origin, retentionMs: 60_000 });
  const backend = new RedisQueueBackend(
    { ...DEFAULTS, lockMs: 30_000, ...options, url: server.url, prefix, maxStalledCount: 1 },
    records,
    redis,
  );
  await backend.start();
  return {
    backend,
    store,
    close: async () => {
      await backend.dispose();
      redis.disconnect();
    },
  };
}

const PARAMS: GenerationParams = {
  prompt: 'p',
  negativePrompt: '',
  width: 64,
  height: 64,
  steps: 2,
  guidanceScale: 1,
  seed: 7,
  superres: false,
};
const generation = (mode: string): JobPayload => ({ kind: 'generation', mode, params: PARAMS });
const context = (host: string, over: Partial<ClaimContext> = {}): ClaimContext => ({
  host,
  activeMode: undefined,
  now: Date.now(),
  ...over,
});
let ids = 0;
const enqueue = (backend: RedisQueueBackend, payload: JobPayload) => {
  ids += 1;
  return backend.enqueue({ id: `j${ids}`, payload, seed: 7, plan: { activeMode: undefined, now: Date.now() } });
};

if (HAVE_REDIS_SERVER) {
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  // Each test on a prefix of its own, on one redis-server this file starts.
  queueBackendContract('Redis (BullMQ)', async (options) => {
    made += 1;
    const { backend, close } = await gateway(`contract${made}`, 'gateway-a', options);
    return { backend, close };
  });

  describe('RedisQueueBackend: gateways sharing one Redis', () => {
    const open: Gateway[] = [];
    const two = async (options: Partial<ContractOptions & { lockMs: number }> = {}) => {
      made += 1;
      const prefix = `shared${made}`;
      const a = await gateway(prefix, 'a', options);
      const b = await gateway(prefix, 'b', options);
      open.push(a, b);
      return [a, b] as const;
    };
    afterEach(async () => {
      for (const each of open.splice(0)) await each.close();
    });

    it('runs a job queued on one gateway on the other, and both see its record, events and image', async () => {
      const [a, b] = await two();
      const seenOnA: JobEvent[] = [];
      a.store.events.on((event) => seenOnA.push(event));
      const { job } = await enqueue(a.backend, generation('m'));
      await waitFor(() => b.store.snapshot(job.id), { what: 'the queued record on B' });
      const [claimed] = await b.backend.claim(context('b/cpu'), { maxBatch: 1 });
      expect(claimed?.id).toBe(job.id);
      b.backend.records.started(job.id, 'b/cpu');
      b.backend.records.progress(job.id, 1, 2);
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]);
      b.backend.records.finish(job.id, {
        state: 'completed',
        generateMs: 3,
        image: { png, mode: 'm', seed: 7, superres: false },
      });
      await waitFor(() => a.store.snapshot(job.id)?.state === 'completed', { what: 'the completed record on A' });
      expect(seenOnA.map((event) => event.type)).toEqual(['queued', 'started', 'progress', 'completed']);
      expect(a.store.get(job.id)).toMatchObject({ state: 'completed', host: 'b/cpu', generate_ms: 3 });
      expect(await a.backend.records.image(job.id)).toEqual({
        found: 'image',
        image: { png, mode: 'm', seed: 7, superres: false },
      });
      // BullMQ was told: nothing waits, nothing is held.
      expect(await a.backend.size()).toBe(0);
      await expect(b.backend.claim(context('b/cpu'), { maxBatch: 1 })).resolves.toEqual([]);
    });

    it('bounds the shared queue by QUEUE_MAX, and cancels from any gateway', async () => {
      const [a, b] = await two({ queueMax: 2 });
      const first = (await enqueue(a.backend, generation('m'))).job;
      await enqueue(b.backend, generation('m'));
      await expect(enqueue(a.backend, generation('m'))).rejects.toBeInstanceOf(QueueFullError);
      await expect(enqueue(b.backend, generation('m'))).rejects.toBeInstanceOf(QueueFullError);
      expect((await b.backend.cancel(first.id))?.id).toBe(first.id);
      await expect(a.backend.cancel(first.id)).resolves.toBeUndefined();
      expect(await a.backend.size()).toBe(1);
      expect((await a.backend.plan({ activeMode: undefined, now: Date.now() })).map((job) => job.seq)).toHaveLength(1);
    });

    it('takes out, when a gateway stops, the jobs it queued that still wait, and leaves the others’', async () => {
      const [a, b] = await two();
      const running = (await enqueue(a.backend, generation('m'))).job;
      const waiting = (await enqueue(a.backend, generation('m'))).job;
      const others = (await enqueue(b.backend, generation('m'))).job;
      expect((await b.backend.claim(context('b/cpu'), { maxBatch: 1 }))[0]?.id).toBe(running.id);
      b.backend.records.started(running.id, 'b/cpu');
      expect((await a.backend.close()).map((job) => job.id)).toEqual([waiting.id]);
      expect((await b.backend.plan({ activeMode: undefined, now: Date.now() })).map((job) => job.id)).toEqual([
        others.id,
      ]);
      b.backend.records.finish(running.id, { state: 'completed' });
    });

    it('gives a job whose gateway died holding it to another once its lock lapses', async () => {
      const [a, b] = await two({ lockMs: 400 });
      const { job } = await enqueue(a.backend, generation('m'));
      const [claimed] = await b.backend.claim(context('b/cpu'), { maxBatch: 1 });
      expect(claimed?.id).toBe(job.id);
      await b.close(); // B dies: nobody renews the lock.
      const retaken = await waitFor(async () => (await a.backend.claim(context('a/cpu'), { maxBatch: 1 }))[0], {
        what: 'the stalled job back in the queue',
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      expect(retaken.id).toBe(job.id);
      expect(retaken.payload).toEqual(generation('m'));
      a.backend.records.finish(job.id, { state: 'completed' });
      await waitFor(async () => (await a.backend.size()) === 0, { what: 'an empty queue' });
    });

    it('fails, rather than runs elsewhere, a job bound to a host of a gateway that died under it', async () => {
      const [a, b] = await two({ lockMs: 400 });
      ids += 1;
      const bound = `bound${ids}`;
      const payload: JobPayload = { kind: 'custom', handler: 'h', args: [], host: 'b/cpu' };
      await b.backend.enqueue({
        id: bound,
        payload,
        seed: undefined,
        plan: { activeMode: undefined, now: Date.now() },
      });
      expect((await b.backend.claim(context('b/cpu'), { maxBatch: 1 }))[0]?.id).toBe(bound);
      await waitFor(() => a.store.snapshot(bound), { what: 'A to know the job' });
      await b.close();
      const failed = await waitFor(() => a.store.snapshot(bound)?.state === 'failed' && a.store.get(bound), {
        what: 'the bound job failed',
        timeoutMs: 15_000,
      });
      expect(failed.error).toMatchObject({ error: 'model_host_unavailable', statusCode: 503 });
      const after = (await enqueue(a.backend, generation('m'))).job;
      expect((await a.backend.claim(context('a/cpu'), { maxBatch: 1 }))[0]?.id).toBe(after.id);
      a.backend.records.finish(after.id, { state: 'completed' });
    });

    it('keeps a running job while its lock is renewed, however long it runs', async () => {
      const [a, b] = await two({ lockMs: 300 });
      const { job } = await enqueue(a.backend, generation('m'));
      await b.backend.claim(context('b/cpu'), { maxBatch: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // five lock durations: renewed, never stalled
      await expect(a.backend.claim(context('a/cpu'), { maxBatch: 1 })).resolves.toEqual([]);
      b.backend.records.finish(job.id, { state: 'completed' });
    });

    it('answers 503 (QueueUnavailableError) while Redis is away, and works again once it is back', async () => {
      const own = await startRedisServer();
      const redis = commandConnection(own.url);
      await new Promise((resolve) => redis.once('ready', resolve));
      const store = new JobStore(loadConfig({}), new JobEvents());
      const records = new RedisJobRecords(store, redis, { prefix: 'away', origin: 'a', retentionMs: 60_000 });
      const backend = new RedisQueueBackend(
        { ...DEFAULTS, lockMs: 30_000, url: own.url, prefix: 'away', maxStalledCount: 1 },
        records,
        redis,
      );
      try {
        await backend.start();
        await enqueue(backend, generation('m'));
        await own.stop();
        await waitFor(() => backend.unavailableReason, { what: 'the backend to see Redis gone' });
        expect(backend.unavailableReason).toMatch(/Redis at 127\.0\.0\.1:\d+ cannot be reached/);
        await expect(enqueue(backend, generation('m'))).rejects.toBeInstanceOf(QueueUnavailableError);
        await own.restart();
        await waitFor(() => backend.unavailableReason === undefined, {
          what: 'the backend to see Redis back',
          timeoutMs: 20_000,
        });
        await expect(enqueue(backend, generation('m'))).resolves.toMatchObject({ ahead: 0 });
      } finally {
        await backend.dispose();
        redis.disconnect();
        await own.stop();
      }
    });
  });
} else {
  it.skip('QueueBackend contract on Redis: no redis-server on PATH (runner.sh installs Debian’s)', () => undefined);
}
