import { jest } from '@jest/globals';

import type { FakeModelHostProcess, FakeModelHost } from '../../testing/fake-model-host.js';
import { deferred, fakeModes, JobEngineFixture, MODES, PARAMS } from '../../testing/job-engine.fixture.js';
import { waitFor } from '../../testing/wait-for.js';
import {
  ModelLoadError,
  ModelNotLoadedError,
  ModeNotFoundError,
  ModelHostUnavailableError,
} from '../errors/domain.errors.js';
import { parseModesConfig } from '../modes/modes-config.loader.js';
import type { ModesService } from '../modes/modes.service.js';
import type { RegistryService } from '../registry/registry.service.js';
import { CustomJob, GenerationJob, ModeSwitchJob } from './job.types.js';
import type { WorkerPool } from './worker-pool.service.js';

/**
 * The ModelHostWorker under the engine: mode activation and switches, generation, the model host's loss and
 * recovery through its connection, the last switch error, and the model roots.
 */
describe('ModelHostWorker', () => {
  let f: JobEngineFixture;
  let modelHost: FakeModelHost;
  let registry: RegistryService;
  let hostProcess: FakeModelHostProcess;

  const pool = (queueMax?: number, env?: Record<string, string>): WorkerPool => f.pool(queueMax, env);

  beforeEach(() => {
    f = new JobEngineFixture();
    ({ modelHost, registry, process: hostProcess } = f);
  });

  afterEach(() => f.close());

  describe('modes', () => {
    it('loads the mode before its first generation, and not again while it stays active', async () => {
      const workers = pool();
      const first = workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'one' }));
      const second = workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'two' }));
      await expect(first.result()).resolves.toMatchObject({ png: Buffer.from('png:one'), seed: 7 });
      await second.result();
      expect(modelHost.calls).toEqual(['load a', 'generate a one', 'generate a two']);
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
      expect(modelHost.calls).toEqual([
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

    it('runs a ModeSwitchJob in its turn and reports whether it loaded anything', async () => {
      const workers = pool();
      const generation = workers.submitJob(new GenerationJob('a', PARAMS));
      const toB = workers.submitJob(new ModeSwitchJob('b'));
      const toBAgain = workers.submitJob(new ModeSwitchJob('b'));
      await generation.result();
      await expect(toB.result()).resolves.toMatchObject({ mode: 'b', load: { architecture: 'sd15' } });
      await expect(toBAgain.result()).resolves.toEqual({ mode: 'b', load: undefined });
      expect(modelHost.calls).toEqual(['load a', 'generate a a cat', 'load b']);
      expect(registry.currentMode).toBe('b');
    });

    it('rejects a job whose mode does not exist when its turn comes', async () => {
      const workers = pool();
      await expect(workers.submitJob(new GenerationJob('nope', PARAMS)).result()).rejects.toThrow(
        new ModeNotFoundError('nope'),
      );
      await expect(workers.submitJob(new ModeSwitchJob('nope')).result()).rejects.toBeInstanceOf(ModeNotFoundError);
    });

    it('loads the mode again, once, when the model host no longer holds it', async () => {
      const workers = pool();
      await workers.submitJob(new GenerationJob('a', PARAMS)).result();
      modelHost.failGenerateOnce = new ModelNotLoadedError("model 'a' is not loaded");
      await expect(
        workers.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'again' })).result(),
      ).resolves.toMatchObject({
        png: Buffer.from('png:again'),
      });
      expect(modelHost.calls).toEqual(['load a', 'generate a a cat', 'generate a again', 'load a', 'generate a again']);
    });
  });

  describe('when the model host goes away', () => {
    it('fails the running job with 503, keeps the queued ones, refuses new ones, and resumes once it is back', async () => {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('b')).result();
      modelHost.hold = new Promise<void>(() => undefined);
      const running = workers.submitJob(new GenerationJob('b', { ...PARAMS, prompt: 'running' }));
      const queued = workers.submitJob(new GenerationJob('b', { ...PARAMS, prompt: 'queued' }));
      while (modelHost.signals.length === 0) await new Promise((resolve) => setImmediate(resolve));

      // The process died: the model host forgets everything, the gateway hears of it, the call in flight fails.
      modelHost.serving = false;
      modelHost.resident.clear();
      modelHost.hold = undefined;
      hostProcess.lose();
      expect(registry.currentMode).toBeUndefined();
      expect(workers.unavailableReason).toContain('SIGKILL');
      expect(() => workers.submitJob(new GenerationJob('b', PARAMS))).toThrow(ModelHostUnavailableError);
      modelHost.dropConnections();
      await expect(running.result()).rejects.toThrow(
        /^Model host unavailable: the model host stopped while this job ran/,
      );
      // The recovery waits for the model host to serve (the fake polls `serving`): nothing queued may run meanwhile.
      await waitFor(() => modelHost.notServingPolls >= 2, { what: 'the recovery to wait for the model host' });
      expect(workers.queueSize).toBe(1);
      expect(modelHost.calls).toEqual(['load b', 'generate b running']);

      modelHost.serving = true;
      await expect(queued.result()).resolves.toMatchObject({ png: Buffer.from('png:queued') });
      expect(modelHost.calls.slice(-2)).toEqual(['load b', 'generate b queued']);
      expect(registry.currentMode).toBe('b');
      expect(registry.ready).toBe(true);
      expect(workers.unavailableReason).toBeUndefined();
    });
  });

  describe('while the model host does not serve', () => {
    afterEach(() => jest.useRealTimers());

    it('stops taking new work once its health check fails, and keeps what is queued', async () => {
      jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      registry.markStartedUp();
      expect(workers.workers[0]?.connection.state).toBe('serving');
      const gate = deferred<void>();
      const running = workers.submitJob(new CustomJob({ handler: () => gate.promise, args: [] }));
      const queued = workers.submitJob(new GenerationJob('a', PARAMS));
      modelHost.serving = false;
      await jest.advanceTimersByTimeAsync(999);
      expect(workers.workers[0]?.connection.state).toBe('serving');
      await jest.advanceTimersByTimeAsync(1);
      expect(workers.workers[0]?.connection.state).toBe('lost');
      expect(() => workers.submitJob(new GenerationJob('a', PARAMS))).toThrow(
        new ModelHostUnavailableError(
          'the model host went away (its health check says it is not serving); it is being brought back',
        ),
      );
      gate.resolve();
      await running.result();
      await jest.advanceTimersByTimeAsync(50);
      expect(workers.queueSize).toBe(1);
      modelHost.serving = true;
      await jest.advanceTimersByTimeAsync(10);
      await expect(queued.result()).resolves.toMatchObject({ png: Buffer.from('png:a cat') });
      expect(workers.workers[0]?.connection.state).toBe('serving');
    });
  });

  it('takes a health check that gets no answer as lost only after three in a row', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      registry.markStartedUp();
      modelHost.unreachable = true;
      await jest.advanceTimersByTimeAsync(2_000);
      modelHost.unreachable = false;
      await jest.advanceTimersByTimeAsync(1_000);
      modelHost.unreachable = true;
      await jest.advanceTimersByTimeAsync(2_000);
      expect(workers.workers[0]?.connection.state).toBe('serving');
      await jest.advanceTimersByTimeAsync(1_000);
      expect(workers.workers[0]?.connection.state).toBe('lost');
      expect(workers.unavailableReason).toBe('its health check got no answer 3 times in a row');
    } finally {
      jest.useRealTimers();
    }
  });

  describe('last switch error', () => {
    it('keeps the last failed switch until a switch succeeds', async () => {
      const workers = pool();
      expect(workers.lastSwitchError).toBeUndefined();
      modelHost.failLoad = new ModelLoadError('b', 'model file not found: /models/b.safetensors');
      await expect(workers.submitJob(new ModeSwitchJob('b')).result()).rejects.toBe(modelHost.failLoad);
      expect(workers.lastSwitchError).toMatchObject({ mode: 'b', error: modelHost.failLoad });
      expect(workers.lastSwitchError?.at).toBeInstanceOf(Date);
      modelHost.failLoad = undefined;
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
      const setRoots = modelHost.setModelRoots.bind(modelHost);
      modelHost.setModelRoots = (roots) => (order.push('roots'), setRoots(roots));
      const load = modelHost.load.bind(modelHost);
      modelHost.load = (mode) => (order.push(`load ${mode.name}`), load(mode));
      await workers.submitJob(new ModeSwitchJob('a')).result();
      await workers.submitJob(new ModeSwitchJob('b')).result();
      // /models does not exist here: it goes as written (an existing root goes with its symlinks resolved).
      expect(modelHost.rootsSet).toEqual([['/models']]);
      expect(order).toEqual(['roots', 'load a', 'load b']);
    });

    it('gives them again once a lost model host is back, before it loads anything', async () => {
      const workers = pool();
      await workers.submitJob(new ModeSwitchJob('a')).result();
      modelHost.serving = false;
      modelHost.resident.clear();
      hostProcess.lose();
      expect(workers.unavailableReason).toBeDefined();
      modelHost.serving = true;
      await until(() => workers.unavailableReason === undefined, 'the pool recovered');
      expect(modelHost.rootsSet).toEqual([['/models'], ['/models']]);
      expect(modelHost.calls).toEqual(['load a', 'load a']);
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
      const workers = f.pool(64, {}, modes);
      workers.onModuleInit();
      await workers.submitJob(new ModeSwitchJob('a')).result();

      config = parseModesConfig(
        'model_root: /elsewhere\nlora_root: /loras\ndefault_mode: a\nmodes:\n  a:\n    model: a.safetensors\n',
        { source: 'test', baseDir: '/', allowPickle: false },
      );
      for (const listener of listeners) listener(config);
      await until(() => modelHost.rootsSet.length === 2, 'the new roots sent');
      expect(modelHost.rootsSet).toEqual([['/models'], ['/elsewhere', '/loras']]);

      for (const listener of listeners) listener(config);
      await workers.submitJob(new ModeSwitchJob('a')).result();
      expect(modelHost.rootsSet).toHaveLength(2);
    });
  });
});
