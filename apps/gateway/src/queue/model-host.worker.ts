import { Logger } from '@nestjs/common';

import {
  JobCancelledError,
  ModeNotFoundError,
  ModelNotLoadedError,
  ModelHostUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { modelRoots } from '../modes/model-roots.js';
import type { ModesService } from '../modes/modes.service.js';
import type { HostSession } from '../model-host/host-session.js';
import type { ModelHostConnection } from '../model-host/model-host.connection.js';
import type { GenerateOptions, GeneratedImage, GenerateParams } from '../model-host/model-host.types.js';
import type { ResidentEntry } from '../registry/registry.service.js';
import type { GenerationJob, Job, JobContext, JobHandler, ModeSwitchResult } from './job.types.js';
import { ignore } from './job-entry.js';
import type { JobRecords } from './queue-backend.js';

/** ModelHostUnavailableError's own words, not repeated when its message becomes the detail of another. */
const UNAVAILABLE_PREFIX = /^Model host unavailable: /;

/** The last mode switch that failed, until a later one succeeds: shown by GET /api/models/status. */
export interface SwitchFailure {
  readonly at: Date;
  readonly mode: string;
  readonly error: Error;
}

/** One job as the engine hands it to a worker. */
export interface WorkItem {
  /** The job's id in the JobStore: its record is told about switches and progress. */
  readonly id: string;
  readonly job: Job;
  /** Aborted when the job is cancelled: a generation stops at its next step. */
  readonly signal: AbortSignal;
  /** A custom job's handler, resolved by the engine from its registry; undefined for other kinds. */
  readonly handler?: JobHandler;
}

export interface WorkResult {
  readonly value: unknown;
  /** The generation's own time, ms, when the job generated. */
  readonly generateMs?: number;
}

/** What the worker needs besides its host. */
export interface WorkerDeps {
  readonly modes: ModesService;
  readonly store: JobRecords;
  /** Called when the worker can take a job again after something other than a job (its start, a recovery). */
  readonly idle: () => void;
}

/**
 * Runs one job at a time on one model host, through its ModelHostConnection: loads a generation's mode when
 * another is active (the job's record notes the switch), generates with progress per step, keeps the model host's
 * model roots in step with the configuration, and brings the model host into service for its connection (the
 * default mode at start, the last active mode after a loss). The JobEngine (WorkerPool) chooses what it runs.
 *
 * One file for one concern, what runs on one model host: a job, a batch, a switch and the bring-up all read and set
 * the same busy state, active mode and roots, so they stay together rather than hand that state across files.
 */
export class ModelHostWorker {
  private readonly logger: Logger;
  readonly connection: ModelHostConnection;
  private current: WorkItem | undefined;
  private starting = false;
  /** What runs now (a job's result, a batch's end, the start): settled() waits for it, whether it fails or not. */
  private done: Promise<unknown> = Promise.resolve();
  /** The mode the running job is loading, while it loads. */
  private loading: string | undefined;
  /**
   * heldModes() and residentModes() as last computed, kept while the registry's list (a new array after every
   * change) and the active mode are the same: the engine asks on every claim.
   */
  private held:
    { residents: readonly ResidentEntry[]; active: string | undefined; modes: ReadonlySet<string> } | undefined;
  private resident: { residents: readonly ResidentEntry[]; modes: ReadonlySet<string> } | undefined;
  /** The last mode made active: loaded again after the model host comes back. */
  private lastMode: string | undefined;
  /** The model roots the model host has (joined), undefined when it may not have them: sent before the next load. */
  private rootsSent: string | undefined;
  /** Root updates one after the other, so the last one sent is the running configuration's. */
  private rootsSync: Promise<void> = Promise.resolve();
  private lastSwitchFailure: SwitchFailure | undefined;
  private lastActivation = 0;
  /** The memory refresher was told a job started and not yet that the worker went idle. */
  private memoryBusy = false;
  private idleCheck: NodeJS.Immediate | undefined;

  constructor(
    readonly session: HostSession,
    private readonly deps: WorkerDeps,
  ) {
    this.logger = new Logger(`ModelHostWorker ${session.id}`);
    const connection = session.connection;
    this.connection = connection;
    connection.attach({
      settled: () => this.settled(),
      bringUp: () => this.bringUp(),
      restore: () => this.restoreMode(),
    });
  }

  /** Starts the model host and loads the default mode; the worker takes no job meanwhile. */
  start(): Promise<void> {
    this.starting = true;
    const started = this.connection.start().finally(() => {
      this.starting = false;
      this.deps.idle();
    });
    this.done = started;
    return started;
  }

  /** True while a job runs or the model host is being started: the engine hands it nothing then. */
  get busy(): boolean {
    return this.current !== undefined || this.starting;
  }

  /** True when the engine may hand it a job now. */
  get available(): boolean {
    return !this.busy && this.connection.accepting;
  }

  /** The mode the model host will hold once the running job is done: what the scheduler chooses against. */
  get activeMode(): string | undefined {
    const running = this.current?.job;
    if (running && running.kind !== 'custom') return running.mode;
    return this.session.registry.currentMode ?? this.lastMode;
  }

  /** When a mode was last made active here (ms since the epoch; 0: never). */
  get activatedAt(): number {
    return this.lastActivation;
  }

  /** True when a job of `mode` runs here without a load from disk or the RAM tier: active, or on the device. */
  holds(mode: string): boolean {
    return this.activeMode === mode || this.tierOf(mode) === 'device';
  }

  /** The modes whose jobs run here without a load: the active one and those on the device (see `holds`). */
  heldModes(): ReadonlySet<string> {
    const residents = this.session.registry.residentModels();
    const active = this.activeMode;
    const cached = this.held;
    if (cached?.residents === residents && cached.active === active) return cached.modes;
    const modes = new Set<string>();
    if (active !== undefined) modes.add(active);
    for (const entry of residents) if (entry.tier === 'device') modes.add(entry.mode);
    this.held = { residents, active, modes };
    return modes;
  }

  /** Where this host holds `mode`'s pipeline, as its registry last heard: on the device, in the RAM tier, or not. */
  tierOf(mode: string): 'device' | 'ram' | undefined {
    let tier: 'device' | 'ram' | undefined;
    for (const entry of this.session.registry.residentModels()) {
      if (entry.mode === mode && (tier === undefined || entry.tier === 'device')) tier = entry.tier;
    }
    return tier;
  }

  /** The modes this host holds, on the device or in its RAM tier. */
  residentModes(): ReadonlySet<string> {
    const residents = this.session.registry.residentModels();
    if (this.resident?.residents !== residents) {
      this.resident = { residents, modes: new Set(residents.map((entry) => entry.mode)) };
    }
    return this.resident.modes;
  }

  /** Free device memory as last read (0 while unknown). */
  availableBytes(): number {
    return this.session.registry.lastMemory?.availableBytes ?? 0;
  }

  /** The mode being loaded by the running job, while it loads. */
  get switching(): string | undefined {
    return this.loading;
  }

  /** The last failed mode switch, cleared by the next successful one. */
  get lastSwitchError(): SwitchFailure | undefined {
    return this.lastSwitchFailure;
  }

  /** Resolves once nothing runs on this worker any more. */
  settled(): Promise<void> {
    return this.done.then(ignore, ignore);
  }

  /**
   * Runs the item on the model host. A failure that says the model host went away marks the connection lost and
   * becomes a 503 for this job (queued jobs wait for the model host to come back).
   */
  run(item: WorkItem): Promise<WorkResult> {
    if (this.busy) throw new Error('a ModelHostWorker runs one job at a time');
    this.current = item;
    this.busySpell();
    const result = this.execute(item);
    this.done = result;
    return result;
  }

  /**
   * Runs generations of one mode as one batch (see batching.ts): the mode is made active once, in the first
   * member's turn; then each member gets its own progress, cancel and result, as if it had run alone.
   */
  runBatch(items: readonly WorkItem[]): Promise<WorkResult>[] {
    if (this.busy) throw new Error('a ModelHostWorker runs one job or one batch at a time');
    const [first] = items;
    if (!first) return [];
    const generated = this.generateBatch(items);
    this.current = first;
    this.busySpell();
    const results = generated.map((result, i) =>
      result.catch((error: unknown) => {
        throw this.failure(error, items[i] ?? first);
      }),
    );
    this.done = Promise.allSettled(results).then(() => {
      this.current = undefined;
      this.loading = undefined;
      this.mayBeIdle();
    });
    return results;
  }

  private busySpell(): void {
    if (this.memoryBusy) return;
    this.memoryBusy = true;
    this.session.memory.jobStarted();
  }

  /**
   * Jobs run back to back (the engine hands over the next one as the last ends) are one busy spell for the memory
   * refresher: it hears that the worker went idle only once no job started in the same turn of the event loop,
   * where telling it after each job armed and cleared a timer per job.
   */
  private mayBeIdle(): void {
    this.idleCheck ??= setImmediate(() => {
      this.idleCheck = undefined;
      if (this.current !== undefined || !this.memoryBusy) return;
      this.memoryBusy = false;
      void this.session.memory.jobFinished();
    });
  }

  /** Gives the model host the configuration's model roots at once (after a reload), unless it is not serving. */
  syncRootsNow(): void {
    if (!this.connection.accepting) return; // recovery sends them
    this.syncModelRoots().catch((error: Error) =>
      this.logger.warn(`could not give the model host the new model roots: ${error.message}`),
    );
  }

  /**
   * One async function per job (every one passes here): the worker is free again in its `finally`, before the
   * caller's reactions to the result run.
   */
  private async execute(item: WorkItem): Promise<WorkResult> {
    const { job } = item;
    try {
      switch (job.kind) {
        case 'generation':
          return await this.generate(job, item);
        case 'mode-switch':
          return { value: await this.activate(this.deps.modes.getMode(job.mode), item.id) };
        case 'custom': {
          if (!item.handler) throw new UnknownTaskError(`no job handler is registered as '${String(job.handler)}'`);
          const context: JobContext = { host: this.session };
          return { value: await item.handler.apply(context, [...job.args]) };
        }
      }
    } catch (error) {
      const failure = this.failure(error, item);
      if (job.kind === 'mode-switch') {
        this.lastSwitchFailure = { at: new Date(), mode: job.mode, error: failure as Error };
      }
      throw failure;
    } finally {
      this.current = undefined;
      this.loading = undefined;
      this.mayBeIdle();
    }
  }

  /** A failure that says the model host went away: the connection is lost, the job gets a clear 503. */
  private failure(error: unknown, item: WorkItem): unknown {
    const cancelled = item.signal.aborted;
    const lost =
      error instanceof ModelHostUnavailableError ||
      // The model host cancelled a call nobody cancelled: it is shutting down, or gone.
      (error instanceof JobCancelledError && !cancelled) ||
      (!this.connection.accepting && !(error instanceof ModeNotFoundError) && !cancelled);
    if (!lost || this.connection.state === 'stopping') return error;
    const detail = (error instanceof Error ? error.message : String(error)).replace(UNAVAILABLE_PREFIX, '');
    this.connection.lost(detail);
    return new ModelHostUnavailableError(
      `the model host stopped while this job ran (${detail}); jobs still queued will run once it is back`,
    );
  }

  private async generate(job: GenerationJob, item: WorkItem): Promise<WorkResult> {
    // Resolved now, not at submit time: a reload meanwhile may have changed (or removed) the mode.
    const mode = this.deps.modes.getMode(job.mode);
    await this.activate(mode, item.id);
    const params = generateParams(mode, job);
    const options = this.generateOptions(item);
    const host = this.connection.host;
    const started = Date.now();
    let image: GeneratedImage;
    try {
      image = await host.generate(params, options);
    } catch (error) {
      if (!(error instanceof ModelNotLoadedError)) throw error;
      await this.reload(mode, item.id);
      image = await host.generate(params, options);
    }
    return { value: image, generateMs: Date.now() - started };
  }

  /** One promise per member; a member the model host no longer had the pipeline for runs again alone, once. */
  private generateBatch(items: readonly WorkItem[]): Promise<WorkResult>[] {
    const [first] = items;
    if (first?.job.kind !== 'generation') throw new Error('a batch holds generations only');
    const job = first.job;
    const started = Date.now();
    // Resolved now, not at submit time: a reload meanwhile may have changed (or removed) the mode.
    const ready = Promise.resolve().then(async () => {
      const mode = this.deps.modes.getMode(job.mode);
      await this.activate(mode, first.id);
      return mode;
    });
    let reloaded: Promise<void> | undefined;
    const members = ready.then((mode) => {
      const batch = items.map((item) => ({
        params: generateParams(mode, item.job as GenerationJob),
        options: this.generateOptions(item),
      }));
      return { mode, batch, images: this.connection.host.generateBatch(batch) };
    });
    return items.map(async (_, i) => {
      const { mode, batch, images } = await members;
      const member = batch[i];
      if (!member) throw new Error(`no batch member ${i}`);
      let image: GeneratedImage;
      try {
        image = await (images[i] ?? Promise.reject(new Error(`no image for batch member ${i}`)));
      } catch (error) {
        if (!(error instanceof ModelNotLoadedError)) throw error;
        reloaded ??= this.reload(mode, first.id);
        await reloaded;
        image = await this.connection.host.generate(member.params, member.options);
      }
      return { value: image, generateMs: Date.now() - started };
    });
  }

  /** The model host dropped the pipeline behind our back (evicted, or restarted): load it again. */
  private async reload(mode: ResolvedMode, jobId: string): Promise<void> {
    this.logger.warn(`mode '${mode.name}' was no longer resident on the model host: loading it again`);
    this.session.registry.forget(mode.key);
    await this.activate(mode, jobId);
  }

  private generateOptions(item: WorkItem): GenerateOptions {
    return {
      signal: item.signal,
      onProgress: ({ step, totalSteps }) => this.deps.store.progress(item.id, step, totalSteps),
    };
  }

  /** Makes `mode` the active one; `jobId`: the job in whose turn it happens, whose record notes the switch. */
  private async activate(mode: ResolvedMode, jobId?: string): Promise<ModeSwitchResult> {
    const { store } = this.deps;
    const { registry, memory } = this.session;
    this.lastActivation = Date.now();
    if (registry.activeKey === mode.key) {
      this.lastSwitchFailure = undefined;
      return { mode: mode.name, load: undefined };
    }
    const from = registry.currentMode;
    this.logger.log(`switching mode: ${from ?? '(none)'} -> ${mode.name}`);
    this.loading = mode.name;
    if (jobId !== undefined) store.switching(jobId, from, mode.name);
    const started = Date.now();
    try {
      await this.syncModelRoots();
      const load = await this.connection.host.load(mode).catch((error: unknown) => {
        registry.recordLoadFailure(mode, error as Error);
        throw error;
      });
      if (jobId !== undefined) {
        const change = {
          from_mode: from ?? null,
          to_mode: mode.name,
          source: load.source,
          prefetched: load.prefetched,
        };
        store.switched(jobId, change, Date.now() - started);
      }
      registry.recordLoad(mode, load);
      this.lastMode = mode.name;
      this.lastSwitchFailure = undefined;
      this.logger.log(
        `mode '${mode.name}' active (${load.architecture}, ${(load.bytes / 2 ** 20).toFixed(0)} MiB on ${load.device}, ` +
          `${load.source === 'resident' ? 'already resident' : `${load.loadSeconds.toFixed(1)} s`}` +
          `${load.prefetched ? ', prefetched' : ''})`,
      );
      await memory.refresh();
      return { mode: mode.name, load };
    } finally {
      this.loading = undefined;
    }
  }

  /**
   * Gives the model host the running configuration's model roots unless it has them already: it refuses to load
   * anything that resolves outside them, whoever asks.
   */
  private syncModelRoots(): Promise<void> {
    const next = this.rootsSync
      .catch(() => undefined)
      .then(async () => {
        const roots = modelRoots(this.deps.modes.config);
        const id = roots.join('\n');
        if (id === this.rootsSent) return;
        const applied = await this.connection.host.setModelRoots(roots);
        this.rootsSent = id;
        this.logger.log(`model roots given to the model host: ${applied.join(', ')}`);
      });
    this.rootsSync = next;
    return next;
  }

  /** On a model host that has just started: the default mode, whose failure is the last switch error. */
  private async bringUp(): Promise<void> {
    const mode = this.deps.modes.defaultMode;
    try {
      await this.activate(mode);
    } catch (error) {
      this.lastSwitchFailure = { at: new Date(), mode: mode.name, error: error as Error };
      throw error;
    }
  }

  /** On a model host that serves again: loads the mode that was active (the default one if none was). */
  private async restoreMode(): Promise<void> {
    this.rootsSent = undefined;
    await this.syncModelRoots();
    const { modes } = this.deps;
    const name = this.lastMode ?? modes.config.defaultMode;
    const mode = modes.config.modes.get(name) ?? modes.defaultMode;
    try {
      await this.activate(mode);
    } catch (error) {
      if (error instanceof ModelHostUnavailableError || error instanceof JobCancelledError) throw error;
      // The mode itself cannot be loaded any more (its file went, say): the queue goes on without it.
      this.logger.error(`could not load mode '${mode.name}' again: ${(error as Error).message}`);
    }
  }
}

/** The model host's parameters for a generation of `mode`: the request's, with the mode's sampler and clip skip. */
function generateParams(mode: ResolvedMode, job: GenerationJob): GenerateParams {
  return {
    key: mode.key,
    ...job.params,
    sampler: job.params.sampler ?? mode.sampler,
    clipSkip: mode.clipSkip ?? 0,
  };
}
