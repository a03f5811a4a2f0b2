import { Logger } from '@nestjs/common';

import type { RegistryService } from '../registry/registry.service.js';
import type { ModelHost } from '../model-host/model-host.js';

/**
 * How often the memory figures are read while a job runs: often enough that `as_of` in /api/vram is at most
 * a second or two old during work, rare enough to cost the model host nothing next to a denoising step.
 */
export const MEMORY_REFRESH_MS = 1000;

/**
 * How long the model host must have been idle after a job before the figures are read. A read at the instant a
 * job ends lands on the next request's generation (a client sends it as soon as it has its answer): the model
 * host answers GetMemory on its event loop, under the same interpreter lock as the denoising thread, so the read
 * slows that generation down (docs/BENCHMARKS.md, gateway overhead).
 */
export const IDLE_READ_DELAY_MS = 250;

/**
 * Keeps one model host's registry's memory figures fresh (one per host, in its HostSession) so that status requests never call the model host: once after
 * every load, every MEMORY_REFRESH_MS while jobs run, and once the model host has been idle IDLE_READ_DELAY_MS
 * after the last job (the periodic reads go on until then, so back-to-back jobs are read too). An idle model
 * host is never asked. Reads are serialized, so a reply can never overwrite a newer one; a refresh asked for
 * while one is in flight runs once more after it (it must see what happened since), and callers asking
 * meanwhile share that one.
 */
export class MemoryRefresher {
  private readonly logger = new Logger(MemoryRefresher.name);
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private busy = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The read due once the model host has been idle IDLE_READ_DELAY_MS, and who waits for it. */
  private idleRead: { timer: NodeJS.Timeout; done: () => void } | undefined;
  private closed = false;
  private failure: string | undefined;

  constructor(
    private readonly registry: RegistryService,
    private readonly modelHost: ModelHost,
  ) {}

  /** Reads the figures into the registry; never rejects (a failure is logged and the last figures stay). */
  refresh(): Promise<void> {
    if (!this.running) return this.start();
    this.queued ??= this.running.then(() => {
      this.queued = undefined;
      return this.start();
    });
    return this.queued;
  }

  /** Why the last read failed; undefined once one succeeds. */
  get lastFailure(): string | undefined {
    return this.failure;
  }

  /** A job started on the model host: its figures are read periodically until it has been idle a while. */
  jobStarted(): void {
    this.busy += 1;
    // The periodic reads (still going) cover this job; the idle read waits for the next idle spell.
    this.settleIdleRead();
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.refresh(), MEMORY_REFRESH_MS);
    this.timer.unref();
  }

  /**
   * A job finished: once no job has run for IDLE_READ_DELAY_MS the figures are read once more (what it allocated
   * or freed) and the periodic reads stop. Resolves when that read is done, or when a job started first.
   */
  jobFinished(): Promise<void> {
    this.busy = Math.max(0, this.busy - 1);
    if (this.busy > 0 || this.closed) return Promise.resolve();
    this.settleIdleRead();
    let done!: () => void;
    const promise = new Promise<void>((resolve) => (done = resolve));
    const timer = setTimeout(() => {
      this.idleRead = undefined;
      this.stopTimer();
      void this.refresh().then(done);
    }, IDLE_READ_DELAY_MS);
    timer.unref();
    this.idleRead = { timer, done };
    return promise;
  }

  /** The gateway stops: no more reads. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    this.settleIdleRead();
  }

  /** Drops the pending idle read, if any, and lets whoever waits for it go on. */
  private settleIdleRead(): void {
    if (!this.idleRead) return;
    clearTimeout(this.idleRead.timer);
    this.idleRead.done();
    this.idleRead = undefined;
  }

  private start(): Promise<void> {
    const done: Promise<void> = this.read().finally(() => {
      // With one queued, `running` stays set until it starts: a caller in between joins the queued one.
      if (this.running === done && !this.queued) this.running = undefined;
    });
    this.running = done;
    return done;
  }

  private async read(): Promise<void> {
    if (this.closed) return;
    try {
      const version = this.registry.version;
      this.registry.recordMemory(await this.modelHost.getMemory(), version);
      this.failure = undefined;
    } catch (error) {
      this.failure = (error as Error).message.replace(/^Model host unavailable: /, '');
      this.logger.warn(`could not read the model host's memory figures: ${this.failure}`);
    }
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
