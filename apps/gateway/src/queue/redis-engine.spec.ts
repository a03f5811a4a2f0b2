import { jest } from '@jest/globals';

import { JobEngineFixture, PARAMS } from '../../testing/job-engine.fixture.js';
import { HAVE_REDIS_SERVER, startRedisServer, type RedisServer } from '../../testing/redis-server.js';
import { waitFor } from '../../testing/wait-for.js';
import type { AppConfig } from '../config/app-config.js';
import { FailedElsewhereError } from '../errors/domain.errors.js';
import type { JobStore } from './job.store.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import { CustomJob, GenerationJob, type JobContext, type JobHandle } from './job.types.js';
import { RedisJobRecords } from './redis-job.records.js';
import { RedisQueueBackend, commandConnection } from './redis-queue.backend.js';
import type { WorkerPool } from './worker-pool.service.js';

/** Two job engines (gateways A and B, one fake model host each) sharing one Redis queue. */
describe('the job engine over the Redis backend: two gateways, one queue', () => {
  // Real Redis round trips on a shared 2-core machine: a bound of a hang, not a latency.
  jest.setTimeout(30_000);

  let server: RedisServer;
  let prefix = 0;
  const fixtures: JobEngineFixture[] = [];
  const backends: RedisQueueBackend[] = [];

  beforeAll(async () => {
    if (HAVE_REDIS_SERVER) server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    for (const fixture of fixtures.splice(0)) fixture.close();
    for (const backend of backends.splice(0)) await backend.dispose();
  });

  const gateway = (id: string, shared: string): { fixture: JobEngineFixture; pool: WorkerPool } => {
    const fixture = new JobEngineFixture();
    fixture.makeBackend = (config: AppConfig, store: JobStore) => {
      const redis = commandConnection(server.url);
      const records = new RedisJobRecords(store, redis, { prefix: shared, origin: id, retentionMs: 60_000 });
      const backend = new RedisQueueBackend(
        { ...config, url: server.url, prefix: shared, lockMs: 30_000, maxStalledCount: 1 },
        records,
        redis,
      );
      backends.push(backend);
      void backend.startWhenReachable();
      return backend;
    };
    fixtures.push(fixture);
    return { fixture, pool: fixture.pool(64, { GATEWAY_ID: id }) };
  };

  const two = async () => {
    prefix += 1;
    const a = gateway('a', `engine${prefix}`);
    const b = gateway('b', `engine${prefix}`);
    await waitFor(
      () => a.pool.backend.unavailableReason === undefined && b.pool.backend.unavailableReason === undefined,
      {
        what: 'both gateways connected',
      },
    );
    return [a, b] as const;
  };

  (HAVE_REDIS_SERVER ? it : it.skip)(
    'runs jobs queued on A on both gateways, and answers each of A’s callers once, with its image',
    async () => {
      const [a, b] = await two();
      let release!: () => void;
      a.fixture.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
      const handles: JobHandle<GeneratedImage>[] = [];
      for (let i = 0; i < 6; i += 1) {
        handles.push(await a.pool.enqueue(new GenerationJob('a', { ...PARAMS, prompt: `p${i}` })));
      }
      // A's host holds its first job: the others can only run on B meanwhile.
      await waitFor(() => handles.filter((h) => a.pool.store.snapshot(h.id)?.host?.startsWith('b/')).length >= 5, {
        what: 'B to run the jobs A cannot',
      });
      release();
      const images = await Promise.all(handles.map((handle) => handle.result()));
      expect(images.map((image) => image.png.toString())).toEqual(handles.map((_, i) => `png:p${i}`));
      const hosts = handles.map((handle) => a.pool.store.snapshot(handle.id)?.host ?? '');
      expect(hosts.filter((host) => host.startsWith('a/'))).toHaveLength(1);
      expect(hosts.filter((host) => host.startsWith('b/'))).toHaveLength(5);
      for (const handle of handles) {
        await waitFor(() => b.pool.store.snapshot(handle.id)?.state === 'completed', { what: 'B to see it done' });
      }
      expect(await a.pool.queueSize).toBe(0);
    },
  );

  (HAVE_REDIS_SERVER ? it : it.skip)(
    'runs a custom job that carries a function only on the gateway that queued it',
    async () => {
      const [a, b] = await two();
      let release!: () => void;
      a.fixture.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
      const busy = await a.pool.enqueue(new GenerationJob('a', PARAMS));
      await waitFor(() => a.pool.store.snapshot(busy.id)?.state === 'running', { what: 'A busy' });
      const ranOn: string[] = [];
      const local = await a.pool.enqueue(
        new CustomJob({
          handler: function (this: JobContext) {
            ranOn.push(this.host.id);
            return 'here';
          },
          args: [],
        }),
      );
      // B is free all along and sees the job, which waits for A's host (B would fail it: it has no such function).
      await waitFor(() => b.pool.store.snapshot(local.id), { what: 'B to know the job' });
      release();
      await expect(local.result()).resolves.toBe('here');
      expect(ranOn).toEqual([a.fixture.hosts.sessions[0]?.id]);
      await busy.result();
    },
  );

  (HAVE_REDIS_SERVER ? it : it.skip)('cancels from B a job A queued, and A’s caller is told', async () => {
    const [a, b] = await two();
    let releaseA!: () => void;
    let releaseB!: () => void;
    a.fixture.modelHost.hold = new Promise<void>((resolve) => (releaseA = resolve));
    b.fixture.modelHost.hold = new Promise<void>((resolve) => (releaseB = resolve));
    const running: JobHandle<GeneratedImage>[] = [];
    for (let i = 0; i < 2; i += 1) running.push(await a.pool.enqueue(new GenerationJob('a', PARAMS)));
    await waitFor(() => running.every((h) => a.pool.store.snapshot(h.id)?.state === 'running'), {
      what: 'both hosts busy',
    });
    const waiting = await a.pool.enqueue(new GenerationJob('a', { ...PARAMS, prompt: 'cancel me' }));
    await waitFor(() => b.pool.store.snapshot(waiting.id), { what: 'B to know the job' });
    expect(await b.pool.cancelJob(waiting.id)).toBe(true);
    await expect(waiting.result()).rejects.toBeInstanceOf(FailedElsewhereError);
    await expect(waiting.result()).rejects.toMatchObject({ body: { error: 'cancelled', statusCode: 503 } });
    expect(a.pool.store.snapshot(waiting.id)?.state).toBe('cancelled');
    releaseA();
    releaseB();
    await Promise.all(running.map((handle) => handle.result()));
  });
});
