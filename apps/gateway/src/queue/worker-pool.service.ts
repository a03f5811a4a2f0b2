import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModeNotFoundError,
  ModeSwitchTimeoutError,
  ModelNotLoadedError,
  QueueFullError,
  QueueTimeoutError,
  ShuttingDownError,
  SidecarUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { modelRoots } from '../modes/model-roots.js';
import { ModesService } from '../modes/modes.service.js';
import { MemoryRefresher } from '../memory/memory-refresher.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { ModelHostConnection, type ModelHostState } from '../sidecar/model-host.connection.js';
import type { ModelHost, ModelHostLossSource } from '../sidecar/model-host.js';
import { SidecarProcessService } from '../sidecar/sidecar-process.service.js';
import { SidecarRepository } from '../sidecar/sidecar.repository.js';
import type { GeneratedImage, GenerateParams } from '../sidecar/sidecar.types.js';
import { toHttpError } from '../errors/http-error.table.js';
import { FifoScheduler } from './fifo.scheduler.js';
import { ModeAwareScheduler } from './mode-aware.scheduler.js';
import {
  CustomJob,
  GenerationJob,
  ModeSwitchJob,
  type Job,
  type JobHandle,
  type JobHandler,
  type ModeSwitchResult,
} from './job.types.js';
import type { JobImage } from './job-record.types.js';
import { JobStore } from './job.store.js';
import type { SchedulableJob, Scheduler, SchedulingContext } from './scheduler.js';

/** Told to a client whose job found the queue full. */
const RETRY_AFTER_SECONDS = 5;
/** SidecarUnavailableError's own words, not repeated when its message becomes the detail of another. */
const UNAVAILABLE_PREFIX = /^Model host unavailable: /;

/** After SHUTDOWN_GRACE_MS, how long a cancelled job gets to end (a generation stops at its next step). */
const CANCEL_SETTLE_MS = 10_000;

/** The last mode switch that failed, until a later one succeeds: shown by GET /api/models/status. */
export interface SwitchFailure {
  readonly at: Date;
  readonly mode: string;
  readonly error: Error;
}

/** The handler the pool registers itself: `new CustomJob({ handler: RUN_TASK_HANDLER, args: [task, {...}] })`. */
export const RUN_TASK_HANDLER = 'sidecar.run-task';

interface Entry {
  readonly id: string;
  readonly job: Job;
  readonly abort: AbortController;
  readonly submittedAt: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer?: NodeJS.Timeout;
  /** Its caller cancelled it (not a shutdown, not the model host): the job ends `cancelled`. */
  cancelled?: boolean;
  /** The generation's own time, ms, once it ran. */
  generateMs?: number;
}

/**
 * The WorkerPool: the jobs waiting for one model host, in the order its Scheduler chooses (mode-aware, or FIFO at
 * SCHEDULER_MAX_DELAY_MS=0), run one at a time by its worker. A generation for a mode other than the active one
 * loads that mode first. At most QUEUE_MAX jobs wait (the running one not counted), each at most QUEUE_TIMEOUT_MS.
 * Every job is a record in the JobStore, and each change of it a JobEvent.
 *
 * The model host's lifecycle is its ModelHostConnection's: while it is lost, the running job fails (503), queued
 * jobs stay queued, new ones are refused (503); once it serves again (and its mode is restored) the queue goes on.
 *
 * At shutdown (README, "Stopping") new work and the queued jobs are answered
 * 503 at once, and the running job gets SHUTDOWN_GRACE_MS before it is cancelled.
 */
@Injectable()
export class WorkerPool implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(WorkerPool.name);
  private readonly waiting = new Map<string, Entry>();
  private readonly scheduler: Scheduler;
  private seq = 0;
  private readonly handlers = new Map<string, JobHandler>();
  private running: Entry | undefined;
  private runningDone: Promise<void> = Promise.resolve();
  /** The mode the running job is loading, while it loads. */
  private switching: string | undefined;
  /** The last mode made active: loaded again after the sidecar comes back. */
  private lastMode: string | undefined;
  /** The model roots the model host has (joined), undefined when it may not have them: sent before the next load. */
  private rootsSent: string | undefined;
  /** Root updates one after the other, so the last one sent is the running configuration's. */
  private rootsSync: Promise<void> = Promise.resolve();
  private closed = false;
  private lastSwitchFailure: SwitchFailure | undefined;
  /** The one model host this pool's worker runs on; it owns that host's lifecycle. */
  readonly connection: ModelHostConnection;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    @Inject(SidecarRepository) private readonly sidecar: ModelHost,
    private readonly registry: RegistryService,
    @Inject(SidecarProcessService) sidecarProcess: ModelHostLossSource,
    private readonly memory: MemoryRefresher,
    readonly store: JobStore,
  ) {
    this.scheduler =
      config.schedulerMaxDelayMs === 0
        ? new FifoScheduler()
        : new ModeAwareScheduler({ maxDelayMs: config.schedulerMaxDelayMs });
    this.registerHandler(RUN_TASK_HANDLER, (task: string, args: Record<string, unknown> = {}) =>
      this.sidecar.runTask(task, args),
    );
    this.connection = new ModelHostConnection(sidecar, sidecarProcess, registry, config.sidecarStartupTimeoutMs);
    this.connection.attach({ settled: () => this.runningDone, restore: () => this.restoreMode() });
    this.connection.onState((state, reason) => {
      if (state === 'lost') this.logger.error(`${this.waiting.size} queued job(s) wait for the model host (${reason})`);
      if (state === 'serving') {
        this.logger.log(
          `model host back: registry re-synced, mode '${this.registry.currentMode ?? '(none)'}' active; ` +
            `resuming ${this.waiting.size} queued job(s)`,
        );
        this.drain();
      }
    });
  }

  /** Where the pool stands with the model host; see ModelHostState. */
  get state(): ModelHostState {
    return this.connection.state;
  }

  /** The last failed mode switch, cleared by the next successful one. */
  get lastSwitchError(): SwitchFailure | undefined {
    return this.lastSwitchFailure;
  }

  /** A reload that moves model_root or lora_root gives the model host the new roots at once. */
  onModuleInit(): void {
    this.modes.onReload(() => {
      if (this.closed || !this.connection.accepting) return; // recovery sends them
      this.syncModelRoots().catch((error: Error) =>
        this.logger.warn(`could not give the model host the new model roots: ${error.message}`),
      );
    });
  }

  /** Jobs waiting their turn (the running one not counted): the figure QUEUE_MAX bounds. */
  get queueSize(): number {
    return this.waiting.size;
  }

  /** True while a job runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Why the sidecar cannot take work now, or undefined when it can. */
  get unavailableReason(): string | undefined {
    return this.connection.unavailableReason;
  }

  /**
   * The mode the device will hold once everything queued so far has run: the mode of the last generation or
   * switch in the queue, else the running one's, else the active mode. A request that names no mode uses it.
   */
  expectedMode(): string | undefined {
    const context = this.schedulingContext();
    const plan = this.scheduler.plan(context);
    for (let i = plan.length - 1; i >= 0; i -= 1) {
      const mode = plan[i]?.mode;
      if (mode !== undefined) return mode;
    }
    return context.activeMode;
  }

  /** Each waiting job's place in the order the scheduler will run them: 1 runs next. */
  positions(): Map<string, number> {
    return new Map(this.scheduler.plan(this.schedulingContext()).map((job, index) => [job.id, index + 1]));
  }

  /** Cancels the job with this id (see JobHandle.cancel); false when it is not waiting or running. */
  cancelJob(id: string): boolean {
    const entry = this.waiting.get(id) ?? (this.running?.id === id ? this.running : undefined);
    if (!entry) return false;
    this.cancel(entry);
    return true;
  }

  /** The device's mode once the running job is done: what the scheduler chooses against. */
  private schedulingContext(): SchedulingContext {
    const running = this.running?.job;
    const activeMode =
      running && running.kind !== 'custom' ? running.mode : (this.registry.currentMode ?? this.lastMode);
    return { activeMode, now: Date.now() };
  }

  /** Lets `new CustomJob({ handler: name, args })` run `handler(...args)`: a job that is plain data. */
  registerHandler<T, A extends readonly unknown[]>(name: string, handler: JobHandler<T, A>): void {
    if (this.handlers.has(name)) throw new Error(`a job handler is already registered as '${name}'`);
    this.handlers.set(name, handler as unknown as JobHandler);
  }

  /**
   * @throws QueueFullError at once when QUEUE_MAX jobs are already waiting.
   * @throws SidecarUnavailableError while the sidecar is down (queued jobs wait for it; new ones are refused).
   * @throws UnknownTaskError for a CustomJob naming a handler nobody registered.
   */
  submitJob(job: GenerationJob): JobHandle<GeneratedImage>;
  submitJob(job: ModeSwitchJob): JobHandle<ModeSwitchResult>;
  submitJob<T, A extends readonly unknown[]>(job: CustomJob<T, A>): JobHandle<T>;
  submitJob(job: Job): JobHandle<unknown> {
    if (this.closed) throw new ShuttingDownError('the server takes no new work');
    const down = this.connection.unavailableReason;
    if (down !== undefined) {
      throw new SidecarUnavailableError(`the model host went away (${down}); it is being brought back`);
    }
    if (this.waiting.size >= this.config.queueMax) {
      throw new QueueFullError(this.config.queueMax, RETRY_AFTER_SECONDS);
    }
    if (job.kind === 'custom' && typeof job.handler === 'string' && !this.handlers.has(job.handler)) {
      throw new UnknownTaskError(`no job handler is registered as '${job.handler}'`);
    }

    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that never asks for the result must not turn a failure into an unhandled rejection.
    promise.catch(() => undefined);
    const mode = job.kind === 'custom' ? undefined : job.mode;
    const record = this.store.create(job.kind, mode, job.kind === 'generation' ? job.params.seed : undefined);
    const entry: Entry = {
      id: record.id,
      job,
      abort: new AbortController(),
      submittedAt: Date.now(),
      resolve: (value) => {
        this.store.finish(record.id, {
          state: 'completed',
          ...(entry.generateMs !== undefined && { generateMs: entry.generateMs }),
          ...(job.kind === 'generation' && { image: imageOf(job, value as GeneratedImage) }),
        });
        resolve(value);
      },
      reject: (error) => {
        const state = error instanceof JobCancelledError && entry.cancelled ? 'cancelled' : 'failed';
        this.store.finish(record.id, { state, error: toHttpError(error).body });
        reject(error);
      },
    };
    entry.timer = setTimeout(() => this.expire(entry), this.config.queueTimeoutMs);
    entry.timer.unref();
    this.waiting.set(entry.id, entry);
    this.scheduler.add({ id: entry.id, kind: job.kind, mode, seq: ++this.seq, submittedAt: entry.submittedAt });
    const ahead = this.planIndex(entry.id) + (this.running ? 1 : 0);
    this.drain();
    return { id: entry.id, ahead, result: () => promise, cancel: () => this.cancel(entry) };
  }

  private planIndex(id: string): number {
    return this.scheduler.plan(this.schedulingContext()).findIndex((job: SchedulableJob) => job.id === id);
  }

  /** Takes no new work and answers every queued job 503 "shutting down", at once; the running job goes on. */
  beginShutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.close();
    const queued = [...this.waiting.values()];
    for (const entry of queued) {
      this.dequeue(entry);
      entry.reject(new ShuttingDownError('the server stopped before this job started'));
    }
    this.logger.log(
      `shutting down: new work and ${queued.length} queued job(s) answered 503` +
        (this.running ? '; waiting for the running job' : ''),
    );
  }

  /**
   * beginShutdown, then lets the running job finish within `graceMs`; past it the job is cancelled (a generation
   * stops at its next step) and gets CANCEL_SETTLE_MS to end. Resolves when nothing runs any more.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.beginShutdown();
    const entry = this.running;
    if (!entry) return;
    if (await this.settlesWithin(graceMs)) return;
    this.logger.warn(`the running job did not finish within ${graceMs} ms (SHUTDOWN_GRACE_MS): cancelling it`);
    entry.abort.abort();
    if (await this.settlesWithin(CANCEL_SETTLE_MS)) return;
    // A load or a custom job cannot be stopped from here: answer its caller, and stop regardless.
    this.logger.warn(`the running job did not end ${CANCEL_SETTLE_MS} ms after its cancel: stopping regardless`);
    entry.reject(new ShuttingDownError('the server stopped while this job ran'));
  }

  onModuleDestroy(): Promise<void> {
    return this.shutdown(this.config.shutdownGraceMs);
  }

  /** True when the running job has ended within `ms`. */
  private async settlesWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      this.runningDone.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false))),
    ]);
    clearTimeout(timer);
    return settled;
  }

  private cancel(entry: Entry): void {
    entry.cancelled = true;
    if (this.dequeue(entry)) {
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else if (this.running === entry) {
      entry.abort.abort();
    }
  }

  private dequeue(entry: Entry): boolean {
    if (!this.waiting.delete(entry.id)) return false;
    this.scheduler.remove(entry.id);
    clearTimeout(entry.timer);
    return true;
  }

  /** QUEUE_TIMEOUT_MS passed before the entry's turn came. */
  private expire(entry: Entry): void {
    if (!this.dequeue(entry)) return;
    const waited = Date.now() - entry.submittedAt;
    const down = this.connection.unavailableReason;
    if (down !== undefined) {
      entry.reject(
        new SidecarUnavailableError(
          `the model host went away (${down}); gave up after waiting ${waited} ms (QUEUE_TIMEOUT_MS)`,
        ),
      );
    } else if (this.switching !== undefined) {
      entry.reject(
        new ModeSwitchTimeoutError(
          this.switching,
          `waited ${waited} ms in the queue while mode '${this.switching}' was loading (QUEUE_TIMEOUT_MS)`,
        ),
      );
    } else {
      entry.reject(new QueueTimeoutError(waited));
    }
  }

  private drain(): void {
    if (this.running || !this.connection.accepting || this.closed) return;
    const chosen = this.scheduler.next(this.schedulingContext());
    const entry = chosen && this.waiting.get(chosen.id);
    if (!entry) return;
    this.waiting.delete(entry.id);
    clearTimeout(entry.timer);
    this.running = entry;
    this.store.started(entry.id);
    this.runningDone = this.execute(entry).finally(() => {
      this.running = undefined;
      this.switching = undefined;
      this.drain();
    });
  }

  /** Settles the entry's promise; never throws, so one failed job cannot stop the queue. */
  private async execute(entry: Entry): Promise<void> {
    this.memory.jobStarted();
    try {
      entry.resolve(await this.run(entry));
    } catch (error) {
      const failure = this.jobFailure(error, entry);
      if (entry.job.kind === 'mode-switch') {
        this.lastSwitchFailure = { at: new Date(), mode: entry.job.mode, error: failure as Error };
      }
      entry.reject(failure);
    } finally {
      void this.memory.jobFinished();
    }
  }

  /** A failure that says the sidecar went away stops the queue until it is back; the job gets a clear 503. */
  private jobFailure(error: unknown, entry: Entry): unknown {
    const lost =
      error instanceof SidecarUnavailableError ||
      // The sidecar cancelled a call nobody cancelled: it is shutting down, or gone.
      (error instanceof JobCancelledError && !entry.abort.signal.aborted) ||
      (!this.connection.accepting && !(error instanceof ModeNotFoundError) && !entry.abort.signal.aborted);
    if (this.closed && error instanceof JobCancelledError && entry.abort.signal.aborted) {
      return new ShuttingDownError(
        `the job was cancelled: it did not finish within ${this.config.shutdownGraceMs} ms (SHUTDOWN_GRACE_MS)`,
      );
    }
    if (!lost || this.closed) return error;
    const detail = (error instanceof Error ? error.message : String(error)).replace(UNAVAILABLE_PREFIX, '');
    this.connection.lost(detail);
    return new SidecarUnavailableError(
      `the model host stopped while this job ran (${detail}); jobs still queued will run once it is back`,
    );
  }

  private async run(entry: Entry): Promise<unknown> {
    const { job } = entry;
    switch (job.kind) {
      case 'generation':
        return this.generate(job, entry);
      case 'mode-switch':
        return this.activate(this.modes.getMode(job.mode), entry.id);
      case 'custom': {
        const handler = typeof job.handler === 'string' ? this.handlers.get(job.handler) : job.handler;
        if (!handler) throw new UnknownTaskError(`no job handler is registered as '${String(job.handler)}'`);
        return handler(...job.args);
      }
    }
  }

  private async generate(job: GenerationJob, entry: Entry): Promise<GeneratedImage> {
    // Resolved now, not at submit time: a reload meanwhile may have changed (or removed) the mode.
    const mode = this.modes.getMode(job.mode);
    await this.activate(mode, entry.id);
    const params: GenerateParams = {
      key: mode.key,
      ...job.params,
      scheduler: job.params.scheduler ?? mode.scheduler,
      clipSkip: mode.clipSkip ?? 0,
    };
    const options = {
      signal: entry.abort.signal,
      onProgress: ({ step, totalSteps }: { step: number; totalSteps: number }) =>
        this.store.progress(entry.id, step, totalSteps),
    };
    const started = Date.now();
    try {
      return await this.sidecar.generate(params, options);
    } catch (error) {
      if (!(error instanceof ModelNotLoadedError)) throw error;
      // The sidecar dropped the pipeline behind our back (evicted, or restarted): load it again, once.
      this.logger.warn(`mode '${mode.name}' was no longer resident on the model host: loading it again`);
      this.registry.forget(mode.key);
      await this.activate(mode, entry.id);
      return await this.sidecar.generate(params, options);
    } finally {
      entry.generateMs = Date.now() - started;
    }
  }

  /** Makes `mode` the active one; `jobId`: the job in whose turn it happens, whose record notes the switch. */
  private async activate(mode: ResolvedMode, jobId?: string): Promise<ModeSwitchResult> {
    if (this.registry.activeKey === mode.key) {
      this.lastSwitchFailure = undefined;
      return { mode: mode.name, load: undefined };
    }
    const from = this.registry.currentMode;
    this.logger.log(`switching mode: ${from ?? '(none)'} -> ${mode.name}`);
    this.switching = mode.name;
    if (jobId !== undefined) this.store.switching(jobId, from, mode.name);
    const started = Date.now();
    try {
      await this.syncModelRoots();
      const load = await this.sidecar.load(mode);
      if (jobId !== undefined) {
        const change = { from_mode: from ?? null, to_mode: mode.name, source: load.source };
        this.store.switched(jobId, change, Date.now() - started);
      }
      this.registry.recordLoad(mode, load);
      this.lastMode = mode.name;
      this.lastSwitchFailure = undefined;
      this.logger.log(
        `mode '${mode.name}' active (${load.architecture}, ${(load.bytes / 2 ** 20).toFixed(0)} MiB on ${load.device}, ` +
          `${load.source === 'resident' ? 'already resident' : `${load.loadSeconds.toFixed(1)} s`})`,
      );
      await this.memory.refresh();
      return { mode: mode.name, load };
    } finally {
      this.switching = undefined;
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
        const roots = modelRoots(this.modes.config);
        const id = roots.join('\n');
        if (id === this.rootsSent) return;
        const applied = await this.sidecar.setModelRoots(roots);
        this.rootsSent = id;
        this.logger.log(`model roots given to the model host: ${applied.join(', ')}`);
      });
    this.rootsSync = next;
    return next;
  }

  /** On a model host that serves again: loads the mode that was active (the default one if none was). */
  private async restoreMode(): Promise<void> {
    this.rootsSent = undefined;
    await this.syncModelRoots();
    const name = this.lastMode ?? this.modes.config.defaultMode;
    const mode = this.modes.config.modes.get(name) ?? this.modes.defaultMode;
    try {
      await this.activate(mode);
    } catch (error) {
      if (error instanceof SidecarUnavailableError || error instanceof JobCancelledError) throw error;
      // The mode itself cannot be loaded any more (its file went, say): the queue goes on without it.
      this.logger.error(`could not load mode '${mode.name}' again: ${(error as Error).message}`);
    }
  }
}

function imageOf(job: GenerationJob, image: GeneratedImage): JobImage {
  return { png: image.png, mode: job.mode, seed: image.seed, superres: image.superresApplied };
}
