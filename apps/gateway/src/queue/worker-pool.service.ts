import { setTimeout as sleep } from 'node:timers/promises';

import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModeNotFoundError,
  ModeSwitchTimeoutError,
  ModelNotLoadedError,
  QueueFullError,
  QueueTimeoutError,
  SidecarUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { modelRoots } from '../modes/model-roots.js';
import { ModesService } from '../modes/modes.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { SidecarProcessService } from '../sidecar/sidecar-process.service.js';
import { SidecarRepository } from '../sidecar/sidecar.repository.js';
import type { GeneratedImage, GenerateParams } from '../sidecar/sidecar.types.js';
import {
  CustomJob,
  GenerationJob,
  ModeSwitchJob,
  type Job,
  type JobHandle,
  type JobHandler,
  type ModeSwitchResult,
} from './job.types.js';

/** Told to a client whose job found the queue full. */
const RETRY_AFTER_SECONDS = 5;
/** Pause between two tries to bring a lost sidecar back into service. */
const RECOVERY_RETRY_MS = 1_000;

/** SidecarUnavailableError's own words, not repeated when its message becomes the detail of another. */
const UNAVAILABLE_PREFIX = /^Model host unavailable: /;

/** The handler the pool registers itself: `new CustomJob({ handler: RUN_TASK_HANDLER, args: [task, {...}] })`. */
export const RUN_TASK_HANDLER = 'sidecar.run-task';

interface Entry {
  readonly id: number;
  readonly job: Job;
  readonly abort: AbortController;
  readonly submittedAt: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The WorkerPool: one FIFO queue in front of the sidecar's device, one job at
 * a time. A generation for a mode other than the active one loads that mode
 * first. At most QUEUE_MAX jobs wait (the running one not counted), each at
 * most QUEUE_TIMEOUT_MS.
 *
 * When the sidecar goes away the running job fails (503), queued jobs stay
 * queued, new jobs are refused (503); once it serves again the registry is
 * re-synced from GetMemory, the mode that was active is loaded again, and the
 * queue carries on.
 */
@Injectable()
export class WorkerPool implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(WorkerPool.name);
  private readonly waiting: Entry[] = [];
  private readonly handlers = new Map<string, JobHandler>();
  private readonly stop = new AbortController();
  private running: Entry | undefined;
  private runningDone: Promise<void> = Promise.resolve();
  /** The mode the running job is loading, while it loads. */
  private switching: string | undefined;
  /** The last mode made active: loaded again after the sidecar comes back. */
  private lastMode: string | undefined;
  /** Why the sidecar cannot take work; undefined while it can. */
  private down: string | undefined;
  private recovering: Promise<void> | undefined;
  /** The model roots the model host has (joined), undefined when it may not have them: sent before the next load. */
  private rootsSent: string | undefined;
  /** Root updates one after the other, so the last one sent is the running configuration's. */
  private rootsSync: Promise<void> = Promise.resolve();
  private nextId = 1;
  private closed = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    private readonly sidecar: SidecarRepository,
    private readonly registry: RegistryService,
    sidecarProcess: SidecarProcessService,
  ) {
    this.registerHandler(RUN_TASK_HANDLER, (task: string, args: Record<string, unknown> = {}) =>
      this.sidecar.runTask(task, args),
    );
    sidecarProcess.onLost((reason) => this.sidecarLost(reason));
  }

  /** A reload that moves model_root or lora_root gives the model host the new roots at once. */
  onModuleInit(): void {
    this.modes.onReload(() => {
      if (this.closed || this.down !== undefined) return; // recovery sends them
      this.syncModelRoots().catch((error: Error) =>
        this.logger.warn(`could not give the model host the new model roots: ${error.message}`),
      );
    });
  }

  /** Jobs waiting their turn (the running one not counted): the figure QUEUE_MAX bounds. */
  get queueSize(): number {
    return this.waiting.length;
  }

  /** True while a job runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Why the sidecar cannot take work now, or undefined when it can. */
  get unavailableReason(): string | undefined {
    return this.down;
  }

  /**
   * The mode the device will hold once everything queued so far has run: the mode of the last generation or
   * switch in the queue, else the running one's, else the active mode. A request that names no mode uses it.
   */
  expectedMode(): string | undefined {
    for (let i = this.waiting.length - 1; i >= 0; i -= 1) {
      const job = this.waiting[i]?.job;
      if (job && job.kind !== 'custom') return job.mode;
    }
    const running = this.running?.job;
    if (running && running.kind !== 'custom') return running.mode;
    return this.registry.currentMode ?? this.lastMode;
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
    if (this.closed) throw new SidecarUnavailableError('the server is shutting down');
    if (this.down !== undefined) {
      throw new SidecarUnavailableError(`the model host went away (${this.down}); it is being brought back`);
    }
    if (this.waiting.length >= this.config.queueMax) {
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
    const ahead = this.waiting.length + (this.running ? 1 : 0);
    const entry: Entry = {
      id: this.nextId++,
      job,
      abort: new AbortController(),
      submittedAt: Date.now(),
      resolve,
      reject,
    };
    entry.timer = setTimeout(() => this.expire(entry), this.config.queueTimeoutMs);
    entry.timer.unref();
    this.waiting.push(entry);
    this.drain();
    return { id: entry.id, ahead, result: () => promise, cancel: () => this.cancel(entry) };
  }

  onModuleDestroy(): void {
    this.closed = true;
    this.stop.abort();
    for (const entry of this.waiting.splice(0)) {
      clearTimeout(entry.timer);
      entry.reject(new SidecarUnavailableError('the server is shutting down'));
    }
    this.running?.abort.abort();
  }

  private cancel(entry: Entry): void {
    if (this.dequeue(entry)) {
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else if (this.running === entry) {
      entry.abort.abort();
    }
  }

  private dequeue(entry: Entry): boolean {
    const index = this.waiting.indexOf(entry);
    if (index < 0) return false;
    this.waiting.splice(index, 1);
    clearTimeout(entry.timer);
    return true;
  }

  /** QUEUE_TIMEOUT_MS passed before the entry's turn came. */
  private expire(entry: Entry): void {
    if (!this.dequeue(entry)) return;
    const waited = Date.now() - entry.submittedAt;
    if (this.down !== undefined) {
      entry.reject(
        new SidecarUnavailableError(
          `the model host went away (${this.down}); gave up after waiting ${waited} ms (QUEUE_TIMEOUT_MS)`,
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
    if (this.running || this.down !== undefined || this.closed) return;
    const entry = this.waiting.shift();
    if (!entry) return;
    clearTimeout(entry.timer);
    this.running = entry;
    this.runningDone = this.execute(entry).finally(() => {
      this.running = undefined;
      this.switching = undefined;
      this.drain();
    });
  }

  /** Settles the entry's promise; never throws, so one failed job cannot stop the queue. */
  private async execute(entry: Entry): Promise<void> {
    try {
      entry.resolve(await this.run(entry.job, entry.abort.signal));
    } catch (error) {
      entry.reject(this.jobFailure(error, entry));
    }
  }

  /** A failure that says the sidecar went away stops the queue until it is back; the job gets a clear 503. */
  private jobFailure(error: unknown, entry: Entry): unknown {
    const lost =
      error instanceof SidecarUnavailableError ||
      // The sidecar cancelled a call nobody cancelled: it is shutting down, or gone.
      (error instanceof JobCancelledError && !entry.abort.signal.aborted) ||
      (this.down !== undefined && !(error instanceof ModeNotFoundError) && !entry.abort.signal.aborted);
    if (!lost || this.closed) return error;
    const detail = (error instanceof Error ? error.message : String(error)).replace(UNAVAILABLE_PREFIX, '');
    this.sidecarLost(detail);
    return new SidecarUnavailableError(
      `the model host stopped while this job ran (${detail}); jobs still queued will run once it is back`,
    );
  }

  private async run(job: Job, signal: AbortSignal): Promise<unknown> {
    switch (job.kind) {
      case 'generation':
        return this.generate(job, signal);
      case 'mode-switch':
        return this.activate(this.modes.getMode(job.mode));
      case 'custom': {
        const handler = typeof job.handler === 'string' ? this.handlers.get(job.handler) : job.handler;
        if (!handler) throw new UnknownTaskError(`no job handler is registered as '${String(job.handler)}'`);
        return handler(...job.args);
      }
    }
  }

  private async generate(job: GenerationJob, signal: AbortSignal): Promise<GeneratedImage> {
    // Resolved now, not at submit time: a reload meanwhile may have changed (or removed) the mode.
    const mode = this.modes.getMode(job.mode);
    await this.activate(mode);
    const params: GenerateParams = {
      key: mode.key,
      ...job.params,
      scheduler: job.params.scheduler ?? mode.scheduler,
      clipSkip: mode.clipSkip ?? 0,
    };
    try {
      return await this.sidecar.generate(params, { signal });
    } catch (error) {
      if (!(error instanceof ModelNotLoadedError)) throw error;
      // The sidecar dropped the pipeline behind our back (evicted, or restarted): load it again, once.
      this.logger.warn(`mode '${mode.name}' was no longer resident on the model host: loading it again`);
      this.registry.forget(mode.key);
      await this.activate(mode);
      return this.sidecar.generate(params, { signal });
    }
  }

  private async activate(mode: ResolvedMode): Promise<ModeSwitchResult> {
    if (this.registry.activeKey === mode.key) return { mode: mode.name, load: undefined };
    const from = this.registry.currentMode;
    this.logger.log(`switching mode: ${from ?? '(none)'} -> ${mode.name}`);
    this.switching = mode.name;
    try {
      await this.syncModelRoots();
      const load = await this.sidecar.load(mode);
      this.registry.recordLoad(mode, load);
      this.lastMode = mode.name;
      this.logger.log(
        `mode '${mode.name}' active (${load.architecture}, ${(load.bytes / 2 ** 20).toFixed(0)} MiB on ${load.device}, ` +
          `${load.source === 'resident' ? 'already resident' : `${load.loadSeconds.toFixed(1)} s`})`,
      );
      await this.refreshMemory();
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

  private async refreshMemory(): Promise<void> {
    try {
      const version = this.registry.version;
      this.registry.recordMemory(await this.sidecar.getMemory(), version);
    } catch (error) {
      this.logger.warn(`could not read the model host's memory figures: ${(error as Error).message}`);
    }
  }

  /** The sidecar is gone: stop taking work from the queue until it serves again. */
  private sidecarLost(reason: string): void {
    if (this.closed) return;
    if (this.down === undefined) {
      this.down = reason;
      this.logger.error(
        `model host lost (${reason}): ${this.waiting.length} queued job(s) wait for it, new work gets 503`,
      );
    }
    this.registry.clear();
    this.recovering ??= this.recover().finally(() => (this.recovering = undefined));
  }

  /** Waits until the sidecar serves, re-syncs the registry, loads the last mode again, and resumes the queue. */
  private async recover(): Promise<void> {
    const signal = this.stop.signal;
    for (let attempt = 1; !this.closed; attempt += 1) {
      try {
        await this.runningDone;
        await this.sidecar.waitForReady(this.config.sidecarStartupTimeoutMs, signal);
        this.rootsSent = undefined;
        await this.syncModelRoots();
        this.registry.clear();
        this.registry.recordMemory(await this.sidecar.getMemory());
        const name = this.lastMode ?? this.modes.config.defaultMode;
        const mode = this.modes.config.modes.get(name) ?? this.modes.defaultMode;
        try {
          await this.activate(mode);
        } catch (error) {
          if (error instanceof SidecarUnavailableError || error instanceof JobCancelledError) throw error;
          // The mode itself cannot be loaded any more (its file went, say): the queue goes on without it.
          this.logger.error(`could not load mode '${mode.name}' again: ${(error as Error).message}`);
        }
        this.registry.markStartedUp();
        this.down = undefined;
        this.logger.log(
          `model host back: registry re-synced, mode '${this.registry.currentMode ?? '(none)'}' active; ` +
            `resuming ${this.waiting.length} queued job(s)`,
        );
        this.drain();
        return;
      } catch (error) {
        if (this.closed) return;
        this.logger.warn(`model host not back yet (try ${attempt}): ${(error as Error).message}`);
        await sleep(RECOVERY_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}
