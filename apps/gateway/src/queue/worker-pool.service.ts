import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModelNotLoadedError,
  QueueFullError,
  SidecarUnavailableError,
} from '../errors/domain.errors.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { SidecarRepository } from '../sidecar/sidecar.repository.js';
import type { GeneratedImage } from '../sidecar/sidecar.types.js';
import {
  CustomJob,
  GenerationJob,
  ModeSwitchJob,
  type Job,
  type JobHandle,
  type ModeSwitchResult,
} from './job.types.js';

/** Told to a client whose job found the queue full. */
const RETRY_AFTER_SECONDS = 5;

interface Entry {
  readonly id: number;
  readonly job: Job;
  readonly abort: AbortController;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The WorkerPool: one FIFO queue in front of the sidecar's device, one job at
 * a time. A generation for a mode other than the active one loads that mode
 * first. At most QUEUE_MAX jobs wait (the running one not counted).
 */
@Injectable()
export class WorkerPool implements OnModuleDestroy {
  private readonly logger = new Logger(WorkerPool.name);
  private readonly waiting: Entry[] = [];
  private running: Entry | undefined;
  private nextId = 1;
  private closed = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    private readonly sidecar: SidecarRepository,
    private readonly registry: RegistryService,
  ) {}

  /** Jobs waiting their turn. */
  get queueSize(): number {
    return this.waiting.length;
  }

  /** @throws QueueFullError at once when QUEUE_MAX jobs are already waiting. */
  submitJob(job: GenerationJob): JobHandle<GeneratedImage>;
  submitJob(job: ModeSwitchJob): JobHandle<ModeSwitchResult>;
  submitJob<T, A extends readonly unknown[]>(job: CustomJob<T, A>): JobHandle<T>;
  submitJob(job: Job): JobHandle<unknown> {
    if (this.closed) throw new SidecarUnavailableError('the server is shutting down');
    if (this.waiting.length >= this.config.queueMax) {
      throw new QueueFullError(this.config.queueMax, RETRY_AFTER_SECONDS);
    }

    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that never asks for the result must not turn a failure into an unhandled rejection.
    promise.catch(() => undefined);
    const entry: Entry = { id: this.nextId++, job, abort: new AbortController(), resolve, reject };
    this.waiting.push(entry);
    this.drain();
    return { id: entry.id, result: () => promise, cancel: () => this.cancel(entry) };
  }

  onModuleDestroy(): void {
    this.closed = true;
    for (const entry of this.waiting.splice(0)) {
      entry.reject(new SidecarUnavailableError('the server is shutting down'));
    }
    this.running?.abort.abort();
  }

  private cancel(entry: Entry): void {
    const index = this.waiting.indexOf(entry);
    if (index >= 0) {
      this.waiting.splice(index, 1);
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else if (this.running === entry) {
      entry.abort.abort();
    }
  }

  private drain(): void {
    if (this.running) return;
    const entry = this.waiting.shift();
    if (!entry) return;
    this.running = entry;
    void this.execute(entry).finally(() => {
      this.running = undefined;
      this.drain();
    });
  }

  /** Settles the entry's promise; never throws, so one failed job cannot stop the queue. */
  private async execute(entry: Entry): Promise<void> {
    try {
      entry.resolve(await this.run(entry.job, entry.abort.signal));
    } catch (error) {
      entry.reject(error);
    }
  }

  private async run(job: Job, signal: AbortSignal): Promise<unknown> {
    switch (job.kind) {
      case 'generation':
        return this.generate(job, signal);
      case 'mode-switch':
        return this.activate(this.modes.getMode(job.mode));
      case 'custom':
        return job.run();
    }
  }

  private async generate(job: GenerationJob, signal: AbortSignal): Promise<GeneratedImage> {
    // Resolved now, not at submit time: a reload meanwhile may have changed (or removed) the mode.
    const mode = this.modes.getMode(job.mode);
    await this.activate(mode);
    const params = { key: mode.key, ...job.params };
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
    const load = await this.sidecar.load(mode);
    this.registry.recordLoad(mode, load);
    this.logger.log(
      `mode '${mode.name}' active (${load.architecture}, ${(load.bytes / 2 ** 20).toFixed(0)} MiB on ${load.device}, ` +
        `${load.source === 'resident' ? 'already resident' : `${load.loadSeconds.toFixed(1)} s`})`,
    );
    await this.refreshMemory();
    return { mode: mode.name, load };
  }

  private async refreshMemory(): Promise<void> {
    try {
      this.registry.recordMemory(await this.sidecar.getMemory());
    } catch (error) {
      this.logger.warn(`could not read the model host's memory figures: ${(error as Error).message}`);
    }
  }
}
