import { answeringLater } from '../../testing/async-queue.backend.js';
import { JobEngineFixture, PARAMS } from '../../testing/job-engine.fixture.js';
import { loadConfig } from '../config/app-config.js';
import { JobCancelledError, QueueFullError, QueueTimeoutError } from '../errors/domain.errors.js';
import { JobEvents } from './job.events.js';
import { JobStore } from './job.store.js';
import { CustomJob, GenerationJob, type JobContext } from './job.types.js';
import { MemoryQueueBackend } from './memory-queue.backend.js';
import { queueBackendContract, type ContractOptions } from './queue-backend.contract.js';

function memoryBackend(options: ContractOptions): MemoryQueueBackend {
  const config = loadConfig({});
  return new MemoryQueueBackend(options, new JobStore(config, new JobEvents()));
}

queueBackendContract('in memory', (options) => ({ backend: memoryBackend(options) }));

// The engine's asynchronous path, without Redis: the same backend answering every call on a later turn.
queueBackendContract('in memory, answering later', (options) => ({
  backend: answeringLater(memoryBackend(options)),
}));

describe('the engine over a backend that answers asynchronously', () => {
  let f: JobEngineFixture;

  beforeEach(() => {
    f = new JobEngineFixture();
    f.wrapBackend = answeringLater;
  });

  afterEach(() => f.close());

  it('asks for enqueue(): submitJob needs a backend that answers at once', () => {
    const pool = f.pool();
    expect(() => pool.submitJob(new CustomJob({ handler: () => 1, args: [] }))).toThrow('pool.enqueue');
  });

  it('runs every job once, one at a time per host, across two hosts (no host booked twice)', async () => {
    const pool = f.pool(64, { SIDECAR_DEVICES: 'cpu,cpu' });
    const running = new Map<string, number>();
    const ranOn: string[] = [];
    let overlap = 0;
    const handler = async function (this: JobContext, n: number): Promise<number> {
      const host = this.host.id;
      running.set(host, (running.get(host) ?? 0) + 1);
      if ((running.get(host) ?? 0) > 1) overlap += 1;
      ranOn.push(host);
      await new Promise((resolve) => setImmediate(resolve));
      running.set(host, (running.get(host) ?? 0) - 1);
      return n;
    };
    const handles = await Promise.all(
      Array.from({ length: 30 }, (_, n) => pool.enqueue(new CustomJob({ handler, args: [n] as [number] }))),
    );
    const generations = await Promise.all(
      ['a', 'b', 'a', 'b'].map((mode, i) => pool.enqueue(new GenerationJob(mode, { ...PARAMS, prompt: `p${i}` }))),
    );
    await expect(Promise.all(handles.map((handle) => handle.result()))).resolves.toEqual(
      Array.from({ length: 30 }, (_, n) => n),
    );
    await Promise.all(generations.map((handle) => handle.result()));
    expect(overlap).toBe(0);
    expect(new Set(ranOn).size).toBe(2);
    expect(pool.store.list({ limit: 100 }).every((job) => job.state === 'completed')).toBe(true);
  });

  it('admits up to QUEUE_MAX, cancels a queued job and expires one past QUEUE_TIMEOUT_MS', async () => {
    const pool = f.pool(2, { QUEUE_TIMEOUT_MS: '200' });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const blocking = await pool.enqueue(new CustomJob({ handler: () => gate, args: [] }));
    await new Promise((resolve) => setTimeout(resolve, 20)); // the blocking job is claimed
    const cancelled = await pool.enqueue(new CustomJob({ handler: () => 'no', args: [] }));
    const expiring = await pool.enqueue(new CustomJob({ handler: () => 'late', args: [] }));
    await expect(pool.enqueue(new CustomJob({ handler: () => 'full', args: [] }))).rejects.toBeInstanceOf(
      QueueFullError,
    );
    cancelled.cancel();
    await expect(cancelled.result()).rejects.toBeInstanceOf(JobCancelledError);
    await expect(expiring.result()).rejects.toBeInstanceOf(QueueTimeoutError);
    expect(pool.store.get(cancelled.id)?.state).toBe('cancelled');
    release();
    await expect(blocking.result()).resolves.toBeUndefined();
  });
});
