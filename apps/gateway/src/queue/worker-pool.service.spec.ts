import { jest } from '@jest/globals';

import type { FakeModelHost } from '../../testing/fake-model-host.js';
import { deferred, JobEngineFixture, PARAMS } from '../../testing/job-engine.fixture.js';
import { waitFor } from '../../testing/wait-for.js';
import {
  JobCancelledError,
  ModelLoadError,
  ModeSwitchTimeoutError,
  QueueFullError,
  QueueTimeoutError,
  ShuttingDownError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { MemoryRefresher } from '../memory/memory-refresher.service.js';
import type { RegistryService } from '../registry/registry.service.js';
import { CustomJob, GenerationJob, ModeSwitchJob } from './job.types.js';
import type { JobEvent } from './job.events.js';
import type { JobRecords } from './queue-backend.js';
import { RUN_TASK_HANDLER, type WorkerPool } from './worker-pool.service.js';

/** The job engine: order, bounds, cancel, custom jobs, shutdown and job records (the fake model host underneath). */
describe('WorkerPool', () => {
  let f: JobEngineFixture;
  let modelHost: FakeModelHost;
  let registry: RegistryService;

  const pool = (queueMax?: number, env?: Record<string, string>): WorkerPool => f.pool(queueMax, env);

  beforeEach(() => {
    f = new JobEngineFixture();
    ({ modelHost, registry } = f);
  });

  afterEach(() => f.close());

  describe('order', () => {
    it('runs jobs one at a time, first in first out', async () => {
      const workers = pool();
      const events: string[] = [];
      let running = 0;
      const gates = [deferred<void>(), deferred<void>(), deferred<void>()];
      const handles = gates.map((gate, index) =>
        workers.submitJob(
          new CustomJob({
            handler: async (n: number) => {
              running += 1;
              events.push(`start ${n} (${running} running)`);
              await gate.promise;
              running -= 1;
              events.push(`end ${n}`);
              return n * 10;
            },
            args: [index] as [number],
          }),
        ),
      );
      expect(workers.queueSize).toBe(2);
      gates[2]?.resolve();
      gates[1]?.resolve();
      gates[0]?.resolve();
      await expect(Promise.all(handles.map((handle) => handle.result()))).resolves.toEqual([0, 10, 20]);
      expect(events).toEqual([
        'start 0 (1 running)',
        'end 0',
        'start 1 (1 running)',
        'end 1',
        'start 2 (1 running)',
        'end 2',
      ]);
      expect(workers.queueSize).toBe(0);
    });

    it('gives each handle its own id', () => {
      const workers = pool();
      const first = workers.submitJob(new CustomJob({ handler: () => 1, args: [] }));
      const second = workers.submitJob(new CustomJob({ handler: () => 2, args: [] }));
      expect(second.id).not.toBe(first.id);
    });
  });

  describe('scheduling', () => {
    it('groups waiting generations by the active mode under the mode-aware scheduler, with positions to match', async () => {
      const workers = pool(64, { SCHEDULER_MAX_DELAY_MS: '60000' });
      let release!: () => void;
      modelHost.hold = new Promise<void>((resolve) => (release = resolve));
      const jobs = ['a', 'b', 'a', 'b', 'a'].map((mode, i) =>
        workers.submitJob(new GenerationJob(mode, { ...PARAMS, prompt: `p${i}` })),
      );
      expect([...(await workers.positions()).keys()]).toEqual(
        [jobs[2], jobs[4], jobs[1], jobs[3]].map((job) => job?.id),
      );
      expect(jobs[4]?.ahead).toBe(2);
      release();
      await Promise.all(jobs.map((job) => job.result()));
      expect(modelHost.calls.filter((call) => call.startsWith('load'))).toEqual(['load a', 'load b']);
    });
  });

  describe('the bound', () => {
    it('refuses a job at once when QUEUE_MAX jobs are waiting (the running one not counted)', async () => {
      const workers = pool(2);
      const gate = deferred<void>();
      const running = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const waiting = [1, 2].map((n) => workers.submitJob(new CustomJob({ handler: () => n, args: [] })));
      expect(() => workers.submitJob(new CustomJob({ handler: () => 3, args: [] }))).toThrow(QueueFullError);
      let refused: unknown;
      try {
        workers.submitJob(new GenerationJob('a', PARAMS));
      } catch (error) {
        refused = error;
      }
      expect(refused).toMatchObject({ queueMax: 2, retryAfterSeconds: 5 });
      gate.resolve();
      await running.result();
      await expect(Promise.all(waiting.map((handle) => handle.result()))).resolves.toEqual([1, 2]);
      await expect(workers.submitJob(new CustomJob({ handler: () => 4, args: [] })).result()).resolves.toBe(4);
    });
  });

  describe('failures', () => {
    it('rejects only the failing job and carries on', async () => {
      const workers = pool();
      const before = workers.submitJob(new CustomJob({ handler: () => 'before', args: [] }));
      const failing = workers.submitJob(
        new CustomJob({
          handler: () => {
            throw new Error('handler bug');
          },
          args: [],
        }),
      );
      const rejecting = workers.submitJob(
        new CustomJob({ handler: () => Promise.reject(new Error('async bug')), args: [] }),
      );
      const after = workers.submitJob(new GenerationJob('a', PARAMS));
      await expect(before.result()).resolves.toBe('before');
      await expect(failing.result()).rejects.toThrow('handler bug');
      await expect(rejecting.result()).rejects.toThrow('async bug');
      await expect(after.result()).resolves.toMatchObject({ seed: 7 });
    });

    it('keeps a failed load from making its mode active', async () => {
      const workers = pool();
      modelHost.failLoad = new ModelLoadError('a', 'model file not found: /models/a.safetensors');
      await expect(workers.submitJob(new GenerationJob('a', PARAMS)).result()).rejects.toBeInstanceOf(ModelLoadError);
      expect(registry.currentMode).toBeUndefined();
      modelHost.failLoad = undefined;
      await expect(workers.submitJob(new GenerationJob('a', PARAMS)).result()).resolves.toMatchObject({ seed: 7 });
      expect(modelHost.calls).toEqual(['load a', 'load a', 'generate a a cat']);
    });

    it('does not report an unobserved failure as an unhandled rejection', async () => {
      const workers = pool();
      workers.submitJob(new CustomJob({ handler: () => Promise.reject(new Error('nobody listens')), args: [] }));
      await expect(workers.submitJob(new CustomJob({ handler: () => 'next', args: [] })).result()).resolves.toBe(
        'next',
      );
    });
  });

  describe('cancel', () => {
    it('drops a queued job without running it', async () => {
      const workers = pool();
      const gate = deferred<void>();
      const running = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const queued = workers.submitJob(new GenerationJob('a', PARAMS));
      queued.cancel();
      expect(workers.queueSize).toBe(0);
      await expect(queued.result()).rejects.toThrow(new JobCancelledError('job cancelled while queued'));
      gate.resolve();
      await running.result();
      expect(modelHost.calls).toEqual([]);
    });

    it("aborts a running generation's model host call", async () => {
      const workers = pool();
      modelHost.hold = new Promise<void>(() => undefined);
      const handle = workers.submitJob(new GenerationJob('a', PARAMS));
      const next = workers.submitJob(new CustomJob({ handler: () => 'next', args: [] }));
      while (modelHost.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));
      handle.cancel();
      await expect(handle.result()).rejects.toBeInstanceOf(JobCancelledError);
      expect(modelHost.signals[0]?.aborted).toBe(true);
      await expect(next.result()).resolves.toBe('next');
    });

    it('ignores a cancel after the job finished', async () => {
      const workers = pool();
      const handle = workers.submitJob(new CustomJob({ handler: () => 'done', args: [] }));
      await expect(handle.result()).resolves.toBe('done');
      handle.cancel();
      await expect(handle.result()).resolves.toBe('done');
    });
  });

  describe('mode switches', () => {
    it('tells each job how many jobs finish before it starts, the running one included', async () => {
      const workers = pool();
      const gate = deferred<void>();
      const first = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      expect(first.ahead).toBe(0);
      expect(workers.busy).toBe(true);
      const second = workers.submitJob(new GenerationJob('a', PARAMS));
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      expect(second.ahead).toBe(1);
      expect(toB.ahead).toBe(2);
      expect(workers.queueSize).toBe(2);
      gate.resolve();
      await toB.result();
      await new Promise((resolve) => setImmediate(resolve));
      expect(workers.submitJob(new ModeSwitchJob('a')).ahead).toBe(0);
    });

    it('knows the mode the device will hold once the queue has run', async () => {
      const workers = pool();
      expect(workers.expectedMode()).toBeUndefined();
      const gate = deferred<void>();
      const blocker = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      workers.submitJob(new GenerationJob('a', PARAMS));
      expect(workers.expectedMode()).toBe('a');
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      workers.submitJob(new CustomJob({ handler: () => 'custom jobs keep the mode', args: [] }));
      expect(workers.expectedMode()).toBe('b');
      gate.resolve();
      await blocker.result();
      await toB.result();
      expect(workers.expectedMode()).toBe('b');
      expect(registry.currentMode).toBe('b');
    });

    it('answers Mode switch timed out to a request that waited past QUEUE_TIMEOUT_MS behind a switch', async () => {
      const workers = pool(64, { QUEUE_TIMEOUT_MS: '30' });
      let releaseLoad!: () => void;
      modelHost.holdLoad = new Promise((resolve) => (releaseLoad = resolve));
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      const behind = workers.submitJob(new GenerationJob('b', PARAMS));
      await expect(behind.result()).rejects.toBeInstanceOf(ModeSwitchTimeoutError);
      await expect(behind.result()).rejects.toThrow(
        /^Mode switch timed out: waited \d+ ms in the queue while mode 'b'/,
      );
      releaseLoad();
      await expect(toB.result()).resolves.toMatchObject({ mode: 'b' });
      expect(modelHost.calls).toEqual(['load b']);
    });

    it('answers a plain queue timeout when the job ahead is not a switch', async () => {
      const workers = pool(64, { QUEUE_TIMEOUT_MS: '30' });
      const gate = deferred<void>();
      const slow = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const behind = workers.submitJob(new CustomJob({ handler: () => 'late', args: [] }));
      await expect(behind.result()).rejects.toBeInstanceOf(QueueTimeoutError);
      gate.resolve();
      await slow.result();
      expect(workers.queueSize).toBe(0);
    });
  });

  describe('queue timeout (one timer, for the oldest waiting job)', () => {
    /** Settles as soon as `handle` does, recording how: 'waiting' until then. */
    function outcome(handle: { result(): Promise<unknown> }): { now: string } {
      const seen = { now: 'waiting' };
      handle.result().then(
        () => (seen.now = 'done'),
        (error: Error) => (seen.now = error.message),
      );
      return seen;
    }

    beforeEach(() => jest.useFakeTimers({ now: 0, doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
    afterEach(() => jest.useRealTimers());

    it('times out jobs submitted at different times, each at its own deadline', async () => {
      const workers = pool(64, { QUEUE_TIMEOUT_MS: '1000' });
      const gate = deferred<void>();
      const slow = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const first = outcome(workers.submitJob(new CustomJob({ handler: () => 1, args: [] })));
      await jest.advanceTimersByTimeAsync(400);
      const second = outcome(workers.submitJob(new CustomJob({ handler: () => 2, args: [] })));
      await jest.advanceTimersByTimeAsync(599);
      expect([first.now, second.now]).toEqual(['waiting', 'waiting']);
      await jest.advanceTimersByTimeAsync(1);
      expect(first.now).toBe(new QueueTimeoutError(1000).message);
      expect(second.now).toBe('waiting');
      expect(workers.queueSize).toBe(1);
      await jest.advanceTimersByTimeAsync(399);
      expect(second.now).toBe('waiting');
      await jest.advanceTimersByTimeAsync(1);
      expect(second.now).toBe(new QueueTimeoutError(1000).message);
      expect(workers.queueSize).toBe(0);
      gate.resolve();
      await slow.result();
    });

    it('keeps each deadline when a listener of an expiry submits a job', async () => {
      const workers = pool(64, { QUEUE_TIMEOUT_MS: '1000' });
      const gate = deferred<void>();
      const slow = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const first = workers.submitJob(new CustomJob({ handler: () => 1, args: [] }));
      let submitted: { now: string } | undefined;
      f.events.on((event) => {
        if (event.type === 'failed' && event.job.id === first.id) {
          submitted = outcome(workers.submitJob(new CustomJob({ handler: () => 3, args: [] })));
        }
      });
      await jest.advanceTimersByTimeAsync(400);
      const second = outcome(workers.submitJob(new CustomJob({ handler: () => 2, args: [] })));
      await jest.advanceTimersByTimeAsync(600);
      expect(submitted?.now).toBe('waiting');
      await jest.advanceTimersByTimeAsync(399);
      expect(second.now).toBe('waiting');
      await jest.advanceTimersByTimeAsync(1);
      expect(second.now).toBe(new QueueTimeoutError(1000).message);
      await jest.advanceTimersByTimeAsync(599);
      expect(submitted?.now).toBe('waiting');
      await jest.advanceTimersByTimeAsync(1);
      expect(submitted?.now).toBe(new QueueTimeoutError(1000).message);
      gate.resolve();
      await slow.result();
    });

    it('does not time out a job that started or was cancelled before its deadline; the next still times out on time', async () => {
      const workers = pool(64, { QUEUE_TIMEOUT_MS: '1000' });
      const gates = [deferred<void>(), deferred<void>()];
      const slow = workers.submitJob(new CustomJob({ handler: () => gates[0]?.promise, args: [] }));
      const cancelledHandle = workers.submitJob(new CustomJob({ handler: () => 'never', args: [] }));
      const cancelled = outcome(cancelledHandle);
      await jest.advanceTimersByTimeAsync(100);
      const started = outcome(workers.submitJob(new CustomJob({ handler: () => gates[1]?.promise, args: [] })));
      await jest.advanceTimersByTimeAsync(100);
      const last = outcome(workers.submitJob(new CustomJob({ handler: () => 'late', args: [] })));
      await jest.advanceTimersByTimeAsync(300);
      cancelledHandle.cancel();
      gates[0]?.resolve();
      await slow.result();
      // t = 500: the second job runs, the third waits (deadline 1200).
      await jest.advanceTimersByTimeAsync(699);
      expect([cancelled.now, started.now, last.now]).toEqual(['job cancelled while queued', 'waiting', 'waiting']);
      await jest.advanceTimersByTimeAsync(1);
      expect(last.now).toBe(new QueueTimeoutError(1000).message);
      expect(started.now).toBe('waiting');
      gates[1]?.resolve();
      await jest.advanceTimersByTimeAsync(0);
      expect(started.now).toBe('done');
    });
  });

  describe('memory figures', () => {
    it('tells the memory refresher of one busy spell for jobs run back to back, and of the next spell after', async () => {
      // An earlier test's worker may still tell its own refresher that it went idle, in the next turn.
      await new Promise((resolve) => setImmediate(resolve));
      const started = jest.spyOn(MemoryRefresher.prototype, 'jobStarted');
      const finished = jest.spyOn(MemoryRefresher.prototype, 'jobFinished');
      try {
        const workers = pool();
        const handles = [1, 2, 3].map((n) => workers.submitJob(new CustomJob({ handler: () => n, args: [] })));
        await Promise.all(handles.map((handle) => handle.result()));
        await waitFor(() => finished.mock.calls.length === 1, { what: 'the end of the first spell' });
        expect(started).toHaveBeenCalledTimes(1);
        await workers.submitJob(new CustomJob({ handler: () => 4, args: [] })).result();
        await waitFor(() => finished.mock.calls.length === 2, { what: 'the end of the second spell' });
        expect(started).toHaveBeenCalledTimes(2);
      } finally {
        started.mockRestore();
        finished.mockRestore();
      }
    });
  });

  describe('custom jobs', () => {
    it("delivers a handler's result, and its error, to the caller", async () => {
      const workers = pool();
      const sum = workers.submitJob(new CustomJob({ handler: (x: number, y: number) => x + y, args: [2, 3] as const }));
      await expect(sum.result()).resolves.toBe(5);
      const failing = workers.submitJob(
        new CustomJob({
          handler: async (path: string): Promise<string> => {
            await Promise.resolve();
            throw new Error(`cannot read ${path}`);
          },
          args: ['/nope.png'] as [string],
        }),
      );
      await expect(failing.result()).rejects.toThrow('cannot read /nope.png');
    });

    it('runs a handler registered by name: the job is plain data', async () => {
      const workers = pool();
      workers.registerHandler('double', (n: number) => n * 2);
      const job = new CustomJob({ handler: 'double', args: [21] });
      expect(JSON.parse(JSON.stringify(job))).toEqual({ kind: 'custom', handler: 'double', args: [21] });
      await expect(workers.submitJob(job).result()).resolves.toBe(42);
      expect(() => workers.registerHandler('double', () => 0)).toThrow("already registered as 'double'");
      expect(() => workers.submitJob(new CustomJob({ handler: 'nobody', args: [] }))).toThrow(UnknownTaskError);
    });

    it("calls a model host task in its turn through the built-in '" + RUN_TASK_HANDLER + "' handler", async () => {
      const workers = pool();
      const first = workers.submitJob(new GenerationJob('a', PARAMS));
      const task = workers.submitJob(new CustomJob({ handler: RUN_TASK_HANDLER, args: ['echo', { hello: 'world' }] }));
      await first.result();
      await expect(task.result()).resolves.toEqual({ hello: 'world' });
      const unknown = workers.submitJob(new CustomJob({ handler: RUN_TASK_HANDLER, args: ['nope'] }));
      await expect(unknown.result()).rejects.toBeInstanceOf(UnknownTaskError);
      expect(modelHost.calls).toEqual(['load a', 'generate a a cat', 'task echo', 'task nope']);
    });
  });

  describe('at shutdown', () => {
    afterEach(() => jest.useRealTimers());

    it('refuses new jobs and answers the waiting ones at once; the running one finishes within the grace', async () => {
      const workers = pool();
      const gate = deferred<void>();
      const running = workers.submitJob(new CustomJob({ handler: () => gate.promise.then(() => 'done'), args: [] }));
      const waiting = workers.submitJob(new CustomJob({ handler: () => 'never', args: [] }));
      let stopped = false;
      const stopping = workers.shutdown(30_000).then(() => (stopped = true));
      expect(workers.workers[0]?.connection.state).toBe('stopping');
      await expect(waiting.result()).rejects.toThrow(
        new ShuttingDownError('the server stopped before this job started'),
      );
      expect(() => workers.submitJob(new ModeSwitchJob('a'))).toThrow(
        new ShuttingDownError('the server takes no new work'),
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(stopped).toBe(false);
      gate.resolve();
      await stopping;
      await expect(running.result()).resolves.toBe('done');
    });

    it('cancels the running generation once SHUTDOWN_GRACE_MS has passed, and answers it 503', async () => {
      jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
      const workers = pool(64, { SHUTDOWN_GRACE_MS: '5000' });
      modelHost.hold = new Promise<void>(() => undefined);
      const handle = workers.submitJob(new GenerationJob('a', PARAMS));
      while (modelHost.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));
      let stopped = false;
      const stopping = workers.onModuleDestroy().then(() => (stopped = true));
      await jest.advanceTimersByTimeAsync(4_999);
      expect(modelHost.signals[0]?.aborted).toBe(false);
      expect(stopped).toBe(false);
      await jest.advanceTimersByTimeAsync(1);
      await stopping;
      expect(modelHost.signals[0]?.aborted).toBe(true);
      await expect(handle.result()).rejects.toThrow(
        new ShuttingDownError('the job was cancelled: it did not finish within 5000 ms (SHUTDOWN_GRACE_MS)'),
      );
    });
  });
});

describe('WorkerPool job records', () => {
  let f: JobEngineFixture;
  let modelHost: FakeModelHost;
  let store: JobRecords;
  let workers: WorkerPool;
  let seen: JobEvent[];

  beforeEach(() => {
    f = new JobEngineFixture();
    modelHost = f.modelHost;
    seen = [];
    f.events.on((event) => seen.push(event));
    workers = f.pool();
    store = workers.store;
  });

  afterEach(() => f.close());

  it('records a generation: queued, started, the switch of its turn, one progress per step, completed with its image', async () => {
    const handle = workers.submitJob(new GenerationJob('a', PARAMS));
    await handle.result();
    expect(seen.filter((event) => event.job.id === handle.id).map((event) => event.type)).toEqual([
      'queued',
      'started',
      'switching',
      'progress',
      'progress',
      'completed',
    ]);
    const record = store.get(handle.id);
    expect(record).toMatchObject({
      kind: 'generation',
      mode: 'a',
      state: 'completed',
      seed: 7,
      progress: { step: 2, total_steps: 2 },
      switch: { from_mode: null, to_mode: 'a', source: 'disk' },
      error: null,
    });
    expect(record?.queue_ms).toEqual(expect.any(Number));
    expect(record?.generate_ms).toEqual(expect.any(Number));
    expect(store.image(handle.id)).toMatchObject({ found: 'image', image: { mode: 'a', seed: 7 } });

    const again = workers.submitJob(new GenerationJob('a', PARAMS));
    await again.result();
    expect(store.get(again.id)?.switch).toBeNull();
  });

  it('ends a job its caller cancelled as cancelled, one that failed as failed with the error body, and gives positions', async () => {
    let release!: () => void;
    modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    const running = workers.submitJob(new GenerationJob('a', PARAMS));
    const queued = workers.submitJob(new GenerationJob('a', PARAMS));
    const last = workers.submitJob(new GenerationJob('b', PARAMS));
    expect(workers.positions()).toEqual(
      new Map([
        [queued.id, 1],
        [last.id, 2],
      ]),
    );
    expect(workers.cancelJob(queued.id)).toBe(true);
    expect(workers.cancelJob(queued.id)).toBe(false);
    await expect(queued.result()).rejects.toThrow(JobCancelledError);
    expect(store.get(queued.id)).toMatchObject({ state: 'cancelled', started_at: null });
    // Mode a loaded (the roots go first), its generation held: only b's load meets the failure below.
    await waitFor(() => modelHost.calls.some((call) => call.startsWith('generate a')), {
      what: 'the first job generating',
    });
    modelHost.failLoad = new ModelLoadError('b', 'broken');
    release();
    await running.result();
    await expect(last.result()).rejects.toThrow(ModelLoadError);
    expect(store.get(last.id)).toMatchObject({ state: 'failed', error: { statusCode: 500 } });
  });
});
