import { jest } from '@jest/globals';

import { FakeSidecarProcess, FakeSidecarRepository } from '../../testing/fake-sidecar.js';
import { waitFor } from '../../testing/wait-for.js';
import { loadConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModeNotFoundError,
  ModelLoadError,
  ModeSwitchTimeoutError,
  ModelNotLoadedError,
  QueueFullError,
  QueueTimeoutError,
  ShuttingDownError,
  SidecarUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { parseModesConfig } from '../modes/modes-config.loader.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import type { ModesService } from '../modes/modes.service.js';
import { MemoryRefresher } from '../memory/memory-refresher.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { CustomJob, GenerationJob, ModeSwitchJob, type GenerationParams } from './job.types.js';
import { JobEvents, type JobEvent } from './job.events.js';
import { JobStore } from './job.store.js';
import { RUN_TASK_HANDLER, WorkerPool } from './worker-pool.service.js';

const MODES = parseModesConfig(
  'model_root: /models\ndefault_mode: a\nmodes:\n  a:\n    model: a.safetensors\n  b:\n    model: b.safetensors\n',
  { source: 'test', baseDir: '/', allowPickle: false },
);

const fakeModes = {
  config: MODES,
  get defaultMode(): ResolvedMode {
    return fakeModes.getMode('a');
  },
  getMode(name: string): ResolvedMode {
    const mode = MODES.modes.get(name);
    if (!mode) throw new ModeNotFoundError(name);
    return mode;
  },
} as unknown as ModesService;

const PARAMS: GenerationParams = {
  prompt: 'a cat',
  negativePrompt: '',
  width: 64,
  height: 64,
  steps: 2,
  guidanceScale: 1,
  seed: 7,
  superres: false,
};

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('WorkerPool', () => {
  let sidecar: FakeSidecarRepository;
  let registry: RegistryService;
  let sidecarProcess: FakeSidecarProcess;
  let events: JobEvents;
  const pools: WorkerPool[] = [];

  function pool(queueMax = 64, env: Record<string, string> = {}): WorkerPool {
    const config = loadConfig({ QUEUE_MAX: String(queueMax), ...env });
    const created = new WorkerPool(
      config,
      fakeModes,
      sidecar,
      registry,
      sidecarProcess,
      new MemoryRefresher(registry, sidecar),
      new JobStore(config, events),
    );
    pools.push(created);
    return created;
  }

  beforeEach(() => {
    sidecar = new FakeSidecarRepository();
    registry = new RegistryService();
    sidecarProcess = new FakeSidecarProcess();
    events = new JobEvents();
  });

  afterEach(() => {
    for (const created of pools.splice(0)) created.beginShutdown();
  });

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

  describe('modes', () => {
    it('loads the mode before its first generation, and not again while it stays active', async () => {
      const workers = pool();
      const first = workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'one' }));
      const second = workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'two' }));
      await expect(first.result()).resolves.toMatchObject({ png: Buffer.from('png:one'), seed: 7 });
      await second.result();
      expect(sidecar.calls).toEqual(['load a', 'generate a one', 'generate a two']);
      expect(registry.currentMode).toBe('a');
      expect(registry.residentModels().map((entry) => entry.mode)).toEqual(['a']);
      expect(registry.lastMemory?.device).toBe('cpu');
    });

    it('switches mode when a generation asks for another one, in submission order at SCHEDULER_MAX_DELAY_MS=0', async () => {
      const workers = pool(64, { SCHEDULER_MAX_DELAY_MS: '0' });
      const jobs = ['a', 'b', 'b', 'a'].map((mode, i) =>
        workers.submitJob(new GenerationJob(mode, { ...PARAMS, prompt: `p${i}` })),
      );
      await Promise.all(jobs.map((job) => job.result()));
      expect(sidecar.calls).toEqual([
        'load a',
        'generate a p0',
        'load b',
        'generate b p1',
        'generate b p2',
        'load a',
        'generate a p3',
      ]);
      expect(registry.currentMode).toBe('a');
    });

    it('groups waiting generations by the active mode under the mode-aware scheduler, with positions to match', async () => {
      const workers = pool(64, { SCHEDULER_MAX_DELAY_MS: '60000' });
      let release!: () => void;
      sidecar.hold = new Promise<void>((resolve) => (release = resolve));
      const jobs = ['a', 'b', 'a', 'b', 'a'].map((mode, i) =>
        workers.submitJob(new GenerationJob(mode, { ...PARAMS, prompt: `p${i}` })),
      );
      expect([...workers.positions().keys()]).toEqual([jobs[2], jobs[4], jobs[1], jobs[3]].map((job) => job?.id));
      expect(jobs[4]?.ahead).toBe(2);
      release();
      await Promise.all(jobs.map((job) => job.result()));
      expect(sidecar.calls.filter((call) => call.startsWith('load'))).toEqual(['load a', 'load b']);
    });

    it('runs a ModeSwitchJob in its turn and reports whether it loaded anything', async () => {
      const workers = pool();
      const generation = workers.submitJob(new GenerationJob('a', PARAMS));
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      const toBAgain = workers.submitJob(new ModeSwitchJob('b'));
      await generation.result();
      await expect(toB.result()).resolves.toMatchObject({ mode: 'b', load: { architecture: 'sd15' } });
      await expect(toBAgain.result()).resolves.toEqual({ mode: 'b', load: undefined });
      expect(sidecar.calls).toEqual(['load a', 'generate a a cat', 'load b']);
      expect(registry.currentMode).toBe('b');
    });

    it('rejects a job whose mode does not exist when its turn comes', async () => {
      const workers = pool();
      await expect(workers.submitJob(new GenerationJob('nope', PARAMS)).result()).rejects.toThrow(
        new ModeNotFoundError('nope'),
      );
      await expect(workers.submitJob(new ModeSwitchJob('nope')).result()).rejects.toBeInstanceOf(ModeNotFoundError);
    });

    it('loads the mode again, once, when the sidecar no longer holds it', async () => {
      const workers = pool();
      await workers.submitJob(new GenerationJob('a', PARAMS)).result();
      sidecar.failGenerateOnce = new ModelNotLoadedError("model 'a' is not loaded");
      await expect(
        workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'again' })).result(),
      ).resolves.toMatchObject({
        png: Buffer.from('png:again'),
      });
      expect(sidecar.calls).toEqual(['load a', 'generate a a cat', 'generate a again', 'load a', 'generate a again']);
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
      sidecar.failLoad = new ModelLoadError('a', 'model file not found: /models/a.safetensors');
      await expect(workers.submitJob(new GenerationJob('a', PARAMS)).result()).rejects.toBeInstanceOf(ModelLoadError);
      expect(registry.currentMode).toBeUndefined();
      sidecar.failLoad = undefined;
      await expect(workers.submitJob(new GenerationJob('a', PARAMS)).result()).resolves.toMatchObject({ seed: 7 });
      expect(sidecar.calls).toEqual(['load a', 'load a', 'generate a a cat']);
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
      expect(sidecar.calls).toEqual([]);
    });

    it("aborts a running generation's sidecar call", async () => {
      const workers = pool();
      sidecar.hold = new Promise<void>(() => undefined);
      const handle = workers.submitJob(new GenerationJob('a', PARAMS));
      const next = workers.submitJob(new CustomJob({ handler: () => 'next', args: [] }));
      while (sidecar.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));
      handle.cancel();
      await expect(handle.result()).rejects.toBeInstanceOf(JobCancelledError);
      expect(sidecar.signals[0]?.aborted).toBe(true);
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
      sidecar.holdLoad = new Promise((resolve) => (releaseLoad = resolve));
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      const behind = workers.submitJob(new GenerationJob('b', PARAMS));
      await expect(behind.result()).rejects.toBeInstanceOf(ModeSwitchTimeoutError);
      await expect(behind.result()).rejects.toThrow(
        /^Mode switch timed out: waited \d+ ms in the queue while mode 'b'/,
      );
      releaseLoad();
      await expect(toB.result()).resolves.toMatchObject({ mode: 'b' });
      expect(sidecar.calls).toEqual(['load b']);
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

    it("calls a sidecar task in its turn through the built-in '" + RUN_TASK_HANDLER + "' handler", async () => {
      const workers = pool();
      const first = workers.submitJob(new GenerationJob('a', PARAMS));
      const task = workers.submitJob(new CustomJob({ handler: RUN_TASK_HANDLER, args: ['echo', { hello: 'world' }] }));
      await first.result();
      await expect(task.result()).resolves.toEqual({ hello: 'world' });
      const unknown = workers.submitJob(new CustomJob({ handler: RUN_TASK_HANDLER, args: ['nope'] }));
      await expect(unknown.result()).rejects.toBeInstanceOf(UnknownTaskError);
      expect(sidecar.calls).toEqual(['load a', 'generate a a cat', 'task echo', 'task nope']);
    });
  });

  describe('when the sidecar goes away', () => {
    it('fails the running job with 503, keeps the queued ones, refuses new ones, and resumes once it is back', async () => {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('b')).result();
      sidecar.hold = new Promise<void>(() => undefined);
      const running = workers.submitJob(new GenerationJob('b', { ...PARAMS, prompt: 'running' }));
      const queued = workers.submitJob(new GenerationJob('b', { ...PARAMS, prompt: 'queued' }));
      while (sidecar.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));

      // The process died: the sidecar forgets everything, the gateway hears of it, the call in flight fails.
      sidecar.serving = false;
      sidecar.resident.clear();
      sidecar.hold = undefined;
      sidecarProcess.lose();
      expect(registry.currentMode).toBeUndefined();
      expect(workers.unavailableReason).toContain('SIGKILL');
      expect(() => workers.submitJob(new GenerationJob('b', PARAMS))).toThrow(SidecarUnavailableError);
      sidecar.dropConnections();
      await expect(running.result()).rejects.toThrow(
        /^Model host unavailable: the model host stopped while this job ran/,
      );
      // The recovery waits for the model host to serve (the fake polls `serving`): nothing queued may run meanwhile.
      await waitFor(() => sidecar.notServingPolls >= 2, { what: 'the recovery to wait for the model host' });
      expect(workers.queueSize).toBe(1);
      expect(sidecar.calls).toEqual(['load b', 'generate b running']);

      sidecar.serving = true;
      await expect(queued.result()).resolves.toMatchObject({ png: Buffer.from('png:queued') });
      expect(sidecar.calls.slice(-2)).toEqual(['load b', 'generate b queued']);
      expect(registry.currentMode).toBe('b');
      expect(registry.ready).toBe(true);
      expect(workers.unavailableReason).toBeUndefined();
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
      expect(workers.state).toBe('stopping');
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
      sidecar.hold = new Promise<void>(() => undefined);
      const handle = workers.submitJob(new GenerationJob('a', PARAMS));
      while (sidecar.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));
      let stopped = false;
      const stopping = workers.onModuleDestroy().then(() => (stopped = true));
      await jest.advanceTimersByTimeAsync(4_999);
      expect(sidecar.signals[0]?.aborted).toBe(false);
      expect(stopped).toBe(false);
      await jest.advanceTimersByTimeAsync(1);
      await stopping;
      expect(sidecar.signals[0]?.aborted).toBe(true);
      await expect(handle.result()).rejects.toThrow(
        new ShuttingDownError('the job was cancelled: it did not finish within 5000 ms (SHUTDOWN_GRACE_MS)'),
      );
    });
  });

  describe('while the model host does not serve', () => {
    afterEach(() => jest.useRealTimers());

    it('stops taking new work once its health check fails, and keeps what is queued', async () => {
      jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      registry.markStartedUp();
      expect(workers.state).toBe('serving');
      const gate = deferred<void>();
      const running = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const queued = workers.submitJob(new GenerationJob('a', PARAMS));
      sidecar.serving = false;
      await jest.advanceTimersByTimeAsync(999);
      expect(workers.state).toBe('serving');
      await jest.advanceTimersByTimeAsync(1);
      expect(workers.state).toBe('lost');
      expect(() => workers.submitJob(new GenerationJob('a', PARAMS))).toThrow(
        new SidecarUnavailableError(
          'the model host went away (its health check says it is not serving); it is being brought back',
        ),
      );
      gate.resolve();
      await running.result();
      await jest.advanceTimersByTimeAsync(50);
      expect(workers.queueSize).toBe(1);
      sidecar.serving = true;
      await jest.advanceTimersByTimeAsync(10);
      await expect(queued.result()).resolves.toMatchObject({ png: Buffer.from('png:a cat') });
      expect(workers.state).toBe('serving');
    });
  });

  it('takes a health check that gets no answer as lost only after three in a row', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      registry.markStartedUp();
      sidecar.unreachable = true;
      await jest.advanceTimersByTimeAsync(2_000);
      sidecar.unreachable = false;
      await jest.advanceTimersByTimeAsync(1_000);
      sidecar.unreachable = true;
      await jest.advanceTimersByTimeAsync(2_000);
      expect(workers.state).toBe('serving');
      await jest.advanceTimersByTimeAsync(1_000);
      expect(workers.state).toBe('lost');
      expect(workers.unavailableReason).toBe('its health check got no answer 3 times in a row');
    } finally {
      jest.useRealTimers();
    }
  });

  describe('last switch error', () => {
    it('keeps the last failed switch until a switch succeeds', async () => {
      const workers = pool();
      expect(workers.lastSwitchError).toBeUndefined();
      sidecar.failLoad = new ModelLoadError('b', 'model file not found: /models/b.safetensors');
      await expect(workers.submitJob(new ModeSwitchJob('b')).result()).rejects.toBe(sidecar.failLoad);
      expect(workers.lastSwitchError).toMatchObject({ mode: 'b', error: sidecar.failLoad });
      expect(workers.lastSwitchError?.at).toBeInstanceOf(Date);
      sidecar.failLoad = undefined;
      await workers.submitJob(new ModeSwitchJob('a')).result();
      expect(workers.lastSwitchError).toBeUndefined();
    });
  });

  describe('model roots', () => {
    /** Lets pending promise callbacks run until `condition` holds; fails when it never does. */
    async function until(condition: () => boolean, what: string): Promise<void> {
      for (let tick = 0; !condition(); tick += 1) {
        if (tick > 1_000) throw new Error(`never happened: ${what}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }

    it('gives the model host the roots before the first load, and not again while it has them', async () => {
      const workers = pool();
      const order: string[] = [];
      const setRoots = sidecar.setModelRoots.bind(sidecar);
      sidecar.setModelRoots = (roots) => (order.push('roots'), setRoots(roots));
      const load = sidecar.load.bind(sidecar);
      sidecar.load = (mode) => (order.push(`load ${mode.name}`), load(mode));
      await workers.submitJob(new ModeSwitchJob('a')).result();
      await workers.submitJob(new ModeSwitchJob('b')).result();
      // /models does not exist here: it goes as written (an existing root goes with its symlinks resolved).
      expect(sidecar.rootsSet).toEqual([['/models']]);
      expect(order).toEqual(['roots', 'load a', 'load b']);
    });

    it('gives them again once a lost model host is back, before it loads anything', async () => {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      sidecar.serving = false;
      sidecar.resident.clear();
      sidecarProcess.lose();
      expect(workers.unavailableReason).toBeDefined();
      sidecar.serving = true;
      await until(() => workers.unavailableReason === undefined, 'the pool recovered');
      expect(sidecar.rootsSet).toEqual([['/models'], ['/models']]);
      expect(sidecar.calls).toEqual(['load a', 'load a']);
    });

    it('gives the new roots at once after a reload that moves them, and nothing after one that does not', async () => {
      const listeners: ((config: typeof MODES) => void)[] = [];
      let config = MODES;
      const modes = {
        get config() {
          return config;
        },
        getMode: (name: string) => fakeModes.getMode(name),
        onReload: (listener: (next: typeof MODES) => void) => listeners.push(listener),
      } as unknown as ModesService;
      const appConfig = loadConfig({});
      const workers = new WorkerPool(
        appConfig,
        modes,
        sidecar,
        registry,
        sidecarProcess,
        new MemoryRefresher(registry, sidecar),
        new JobStore(appConfig, events),
      );
      pools.push(workers);
      workers.onModuleInit();
      await workers.submitJob(new ModeSwitchJob('a')).result();

      config = parseModesConfig(
        'model_root: /elsewhere\nlora_root: /loras\ndefault_mode: a\nmodes:\n  a:\n    model: a.safetensors\n',
        { source: 'test', baseDir: '/', allowPickle: false },
      );
      for (const listener of listeners) listener(config);
      await until(() => sidecar.rootsSet.length === 2, 'the new roots sent');
      expect(sidecar.rootsSet).toEqual([['/models'], ['/elsewhere', '/loras']]);

      for (const listener of listeners) listener(config);
      await workers.submitJob(new ModeSwitchJob('a')).result();
      expect(sidecar.rootsSet).toHaveLength(2);
    });
  });
});

describe('WorkerPool job records', () => {
  let sidecar: FakeSidecarRepository;
  let store: JobStore;
  let workers: WorkerPool;
  let seen: JobEvent[];

  beforeEach(() => {
    sidecar = new FakeSidecarRepository();
    const config = loadConfig({});
    const events = new JobEvents();
    seen = [];
    events.on((event) => seen.push(event));
    store = new JobStore(config, events);
    const registry = new RegistryService();
    workers = new WorkerPool(
      config,
      fakeModes,
      sidecar,
      registry,
      new FakeSidecarProcess(),
      new MemoryRefresher(registry, sidecar),
      store,
    );
  });

  afterEach(() => workers.beginShutdown());

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
    sidecar.hold = new Promise<void>((resolve) => (release = resolve));
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
    await waitFor(() => sidecar.calls.some((call) => call.startsWith('generate a')), {
      what: 'the first job generating',
    });
    sidecar.failLoad = new ModelLoadError('b', 'broken');
    release();
    await running.result();
    await expect(last.result()).rejects.toThrow(ModelLoadError);
    expect(store.get(last.id)).toMatchObject({ state: 'failed', error: { statusCode: 500 } });
  });
});
