import { jest } from '@jest/globals';

import type { ModesConfig, ResolvedMode } from '../modes/mode.types.js';
import type { ModesService } from '../modes/modes.service.js';
import type { JobSnapshot } from '../queue/job-record.types.js';
import { EventBus } from '../events/event-bus.js';
import { JobEvents } from '../queue/job.events.js';
import type { CustomJob, JobHandler } from '../queue/job.types.js';
import type { WorkerPool } from '../queue/worker-pool.service.js';
import { KEEP_ALIVE_HANDLER, KeepAliveService } from './keep-alive.service.js';
import type { ModelUnloader, UnloadTarget } from './model-unloader.service.js';
import type { HostSession } from '../model-host/host-session.js';
import type { HostsService } from '../model-host/hosts.service.js';

/** The one model host these tests run on. */
const HOST = { id: 'test/cpu' } as HostSession;

/** The engine's side as the service sees it: handlers by name, and the jobs it submitted (not run until told). */
class FakePool {
  readonly handlers = new Map<string, JobHandler>();
  readonly submitted: CustomJob[] = [];

  registerHandler(name: string, handler: JobHandler): void {
    this.handlers.set(name, handler);
  }

  enqueue(job: CustomJob): Promise<void> {
    this.submitted.push(job);
    return Promise.resolve();
  }

  /** Runs the submitted jobs in order, as the worker would in their turn. */
  async runSubmitted(): Promise<void> {
    for (const job of this.submitted.splice(0)) {
      const handler = this.handlers.get(job.handler as string);
      await handler?.apply({ host: HOST }, [...job.args]);
    }
  }
}

function modesWith(keepAlive: Record<string, number | undefined>): ModesConfig {
  const modes = new Map(
    Object.entries(keepAlive).map(([name, ms]) => [name, { name, keepAliveMs: ms } as unknown as ResolvedMode]),
  );
  return { modes } as unknown as ModesConfig;
}

describe('KeepAliveService', () => {
  let events: JobEvents;
  let bus: EventBus;
  let pool: FakePool;
  let unloads: UnloadTarget[];
  /** Modes on one base pipeline on the device, as the model host would report them. */
  let sharedBase: string[];
  let config: ModesConfig;
  let reload: (config: ModesConfig) => void;
  let service: KeepAliveService;
  let seq = 0;

  function emit(type: 'queued' | 'completed' | 'failed', mode: string): void {
    const state = type === 'queued' ? 'queued' : type;
    const job = { id: `j${++seq}`, kind: 'generation', mode, state } as unknown as JobSnapshot;
    events.emit({ type, job });
  }

  beforeEach(() => {
    jest.useFakeTimers({ now: 1_000_000 });
    bus = new EventBus();
    events = new JobEvents(bus);
    pool = new FakePool();
    unloads = [];
    sharedBase = [];
    config = modesWith({ brief: 60_000, zero: 0, forever: undefined });
    const modes = {
      get config() {
        return config;
      },
      onReload: (listener: (config: ModesConfig) => void) => (reload = listener),
    } as unknown as ModesService;
    const unloader = {
      baseSharers: (_host: HostSession, mode: string) =>
        Promise.resolve(sharedBase.includes(mode) ? sharedBase.filter((other) => other !== mode) : []),
      unloadNow: (_host: HostSession, target: UnloadTarget) => {
        unloads.push(target);
        return Promise.resolve({ unloaded: [] });
      },
    } as unknown as ModelUnloader;
    const hosts = { accepting: () => [HOST] } as unknown as HostsService;
    service = new KeepAliveService(bus, pool as unknown as WorkerPool, modes, unloader, hosts);
    service.onModuleInit();
  });

  afterEach(() => {
    service.onModuleDestroy();
    jest.useRealTimers();
  });

  it('arms when the last job of the mode ends, and unloads through a job once it expires', async () => {
    emit('queued', 'brief');
    emit('queued', 'brief');
    emit('completed', 'brief');
    expect(service.expiresAt('brief')).toBeUndefined(); // one still queued
    emit('failed', 'brief');
    expect(service.expiresAt('brief')).toEqual(new Date(1_000_000 + 60_000));
    jest.advanceTimersByTime(59_999);
    expect(pool.submitted).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(pool.submitted.map((job) => job.handler)).toEqual([KEEP_ALIVE_HANDLER]);
    await pool.runSubmitted();
    expect(unloads).toEqual([{ modes: ['brief'] }]);
    expect(service.expiresAt('brief')).toBeUndefined();
  });

  it('lets a request for the mode that arrives before the expiry job runs win', async () => {
    emit('queued', 'zero');
    emit('completed', 'zero');
    jest.advanceTimersByTime(0);
    expect(pool.submitted).toHaveLength(1);
    emit('queued', 'zero'); // queued behind the expiry job
    await pool.runSubmitted();
    expect(unloads).toEqual([]);
    emit('completed', 'zero');
    jest.advanceTimersByTime(0);
    await pool.runSubmitted();
    expect(unloads).toEqual([{ modes: ['zero'] }]);
  });

  it('never arms a mode kept until evicted', () => {
    emit('queued', 'forever');
    emit('completed', 'forever');
    jest.advanceTimersByTime(10 ** 9);
    expect(service.expiresAt('forever')).toBeUndefined();
    expect(pool.submitted).toEqual([]);
  });

  it('applies a reloaded keep_alive to the time already idle, and drops removed modes', () => {
    emit('queued', 'brief');
    emit('completed', 'brief');
    jest.advanceTimersByTime(10_000);
    config = modesWith({ brief: 20_000 });
    reload(config);
    expect(service.expiresAt('brief')).toEqual(new Date(1_000_000 + 20_000));
    config = modesWith({});
    reload(config);
    expect(service.expiresAt('brief')).toBeUndefined();
  });

  function loaded(mode: string): void {
    bus.publish({
      type: 'model.loaded',
      host: HOST.id,
      key: `${mode}-key`,
      mode,
      tier: 'device',
      source: 'disk',
      bytes: 1,
      prefetched: false,
    });
  }

  it('arms a mode loaded by no job (the default mode at start) from its load', async () => {
    loaded('brief');
    expect(service.expiresAt('brief')).toEqual(new Date(1_000_000 + 60_000));
    jest.advanceTimersByTime(60_000);
    await pool.runSubmitted();
    expect(unloads).toEqual([{ modes: ['brief'] }]);
  });

  it("leaves a load made by a job to the job's end", () => {
    emit('queued', 'brief');
    loaded('brief');
    expect(service.expiresAt('brief')).toBeUndefined();
    emit('completed', 'brief');
    expect(service.expiresAt('brief')).toEqual(new Date(1_000_000 + 60_000));
  });

  it('never arms a mode kept until evicted when it is loaded', () => {
    loaded('forever');
    expect(service.expiresAt('forever')).toBeUndefined();
  });

  describe('a base pipeline shared by several modes (LoRA variants)', () => {
    beforeEach(() => {
      config = modesWith({ brief: 60_000, zero: 0, forever: undefined, other: 120_000 });
      reload(config);
    });

    it('stays on the device while a mode kept until evicted shares it', async () => {
      sharedBase = ['zero', 'forever'];
      emit('queued', 'zero');
      emit('completed', 'zero');
      jest.advanceTimersByTime(0);
      await pool.runSubmitted();
      expect(unloads).toEqual([]);
    });

    it('stays while a sharing mode is in use, and goes with the last expiry', async () => {
      sharedBase = ['zero', 'brief'];
      emit('queued', 'brief');
      emit('queued', 'zero');
      emit('completed', 'zero');
      jest.advanceTimersByTime(0);
      await pool.runSubmitted();
      expect(unloads).toEqual([]); // brief is in use
      emit('completed', 'brief');
      jest.advanceTimersByTime(60_000);
      await pool.runSubmitted();
      // Both keys: zero's, left on the base when it expired first, would keep the base on the device for good.
      expect(unloads).toEqual([{ modes: ['brief', 'zero'] }]);
    });

    it("stays until the sharing mode's own keep-alive runs out", async () => {
      sharedBase = ['brief', 'other'];
      emit('queued', 'other');
      emit('completed', 'other'); // other: 120 s from now
      emit('queued', 'brief');
      emit('completed', 'brief'); // brief: 60 s from now
      jest.advanceTimersByTime(60_000);
      await pool.runSubmitted();
      expect(unloads).toEqual([]);
      jest.advanceTimersByTime(60_000);
      await pool.runSubmitted();
      expect(unloads).toEqual([{ modes: ['other', 'brief'] }]);
    });

    it('goes when the sharing mode is no longer in the modes file', async () => {
      sharedBase = ['zero', 'gone'];
      emit('queued', 'zero');
      emit('completed', 'zero');
      jest.advanceTimersByTime(0);
      await pool.runSubmitted();
      expect(unloads).toEqual([{ modes: ['zero', 'gone'] }]);
    });

    it('says when the shared pipeline leaves: the last expiry of the modes on it, none while one keeps it', async () => {
      sharedBase = ['brief', 'other'];
      emit('queued', 'other');
      emit('completed', 'other'); // 120 s from now
      emit('queued', 'brief');
      emit('completed', 'brief'); // 60 s from now
      const other = new Date(1_000_000 + 120_000);
      expect(service.expiresAt('brief', ['brief', 'other'])).toEqual(other);
      expect(service.expiresAt('brief')).toEqual(new Date(1_000_000 + 60_000));
      jest.advanceTimersByTime(60_000);
      await pool.runSubmitted();
      // brief's own expiry ran and left the pipeline to other: it leaves with other's.
      expect(service.expiresAt('brief', ['other'])).toEqual(other);
      expect(service.expiresAt('other', ['brief', 'other'])).toEqual(other);
      expect(service.expiresAt('brief', ['forever'])).toBeUndefined();
      emit('queued', 'other');
      expect(service.expiresAt('brief', ['other'])).toBeUndefined();
    });
  });
});
