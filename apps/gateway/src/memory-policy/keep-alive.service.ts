import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { EventBus } from '../events/event-bus.js';
import type { JobBusEvent, ModelBusEvent } from '../events/event.types.js';
import type { ModesConfig } from '../modes/mode.types.js';
import { outsideRequest } from '../logging/outside-request.js';
import { ModesService } from '../modes/modes.service.js';
import { FINAL_STATES } from '../queue/job-record.types.js';
import { CustomJob, onHost } from '../queue/job.types.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { ModelUnloader } from './model-unloader.service.js';

/** The handler of the job an expired keep-alive submits: args `[mode, generation]`. */
export const KEEP_ALIVE_HANDLER = 'models.keep-alive-expired';
/** How long a keep-alive whose unload could not be queued (queue full, model host away) waits to try again. */
const RETRY_MS = 5_000;

interface Expiry {
  /** Bumped on every change of the mode's timer: a queued expiry job whose generation is stale does nothing. */
  readonly generation: number;
  readonly lastUsed: number;
  /** When the mode is due to be unloaded (ms since the epoch). */
  readonly at: number;
  readonly timer: NodeJS.Timeout;
  /** The hosts whose expiry job has not run yet, once submitted (one bound to each host that serves). */
  pending?: Set<string>;
}

/**
 * Owns the keep-alive timers (README, "Memory policy"). The gateway owns them, not the model host, because only the
 * gateway knows the queue: a mode's timer starts when the last of its queued and running jobs ends, stops when a
 * job for it is queued, and an expiry unloads through the job engine (a CustomJob behind the running work). When
 * that job's turn comes it unloads nothing if a job for the mode was queued meanwhile: the request wins. A mode
 * loaded by no job (the default mode at start, the active mode restored after a model host restart) is idle from
 * its load: nothing would otherwise ever arm its timer.
 */
@Injectable()
export class KeepAliveService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(KeepAliveService.name);
  /** Jobs (generations and switches) per mode that are queued or running. */
  private readonly inUse = new Map<string, number>();
  private readonly expiries = new Map<string, Expiry>();
  private generation = 0;
  private readonly unsubscribe: (() => void)[] = [];
  /** Stopping: the jobs a shutdown ends must not arm new timers. */
  private closed = false;

  constructor(
    private readonly bus: EventBus,
    private readonly pool: WorkerPool,
    private readonly modes: ModesService,
    private readonly unloader: ModelUnloader,
    private readonly hosts: HostsService,
  ) {}

  onModuleInit(): void {
    this.pool.registerHandler(
      KEEP_ALIVE_HANDLER,
      onHost((host, mode: string, generation: number) => this.expired(host, mode, generation)),
    );
    this.unsubscribe.push(
      this.bus.subscribe((event) => this.onJobEvent(event as JobBusEvent), ['job.']),
      this.bus.subscribe((event) => this.onModelEvent(event as ModelBusEvent), ['model.loaded']),
    );
    this.modes.onReload((config) => this.onReload(config));
  }

  onModuleDestroy(): void {
    this.closed = true;
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    for (const mode of [...this.expiries.keys()]) this.clear(mode);
  }

  /**
   * When the mode's pipeline is due to leave the device; undefined while it is in use or kept until evicted.
   * `sharers`: the modes on the same base pipeline there (LoRA variants of one checkpoint): the pipeline leaves
   * when the last of them has expired, so that is the time, and none while one of them wants it for good.
   */
  expiresAt(mode: string, sharers: readonly string[] = []): Date | undefined {
    const group = [mode, ...sharers.filter((other) => other !== mode)];
    if (group.some((member) => this.wantsForGood(member))) return undefined;
    const times = group.flatMap((member) => this.expiries.get(member)?.at ?? []);
    return times.length === 0 ? undefined : new Date(Math.max(...times));
  }

  private onJobEvent(event: JobBusEvent): void {
    const mode = event.job.mode;
    if (mode === null || event.job.kind === 'custom') return;
    if (event.type === 'job.queued') {
      this.inUse.set(mode, (this.inUse.get(mode) ?? 0) + 1);
      this.clear(mode);
    } else if (FINAL_STATES.includes(event.job.state)) {
      const left = (this.inUse.get(mode) ?? 1) - 1;
      if (left > 0) {
        this.inUse.set(mode, left);
        return;
      }
      this.inUse.delete(mode);
      this.arm(mode, Date.now());
    }
  }

  private onModelEvent(event: ModelBusEvent): void {
    if (event.type !== 'model.loaded' || (this.inUse.get(event.mode) ?? 0) > 0) return;
    this.arm(event.mode, Date.now());
  }

  /** A reload that changes a mode's keep_alive applies to the time it has already been idle. */
  private onReload(config: ModesConfig): void {
    for (const [mode, expiry] of [...this.expiries]) {
      if (config.modes.has(mode)) this.arm(mode, expiry.lastUsed);
      else this.clear(mode);
    }
  }

  private arm(mode: string, lastUsed: number): void {
    this.clear(mode);
    const keepAliveMs = this.modes.config.modes.get(mode)?.keepAliveMs;
    if (keepAliveMs === undefined) return;
    this.schedule(mode, lastUsed, lastUsed + keepAliveMs);
  }

  private schedule(mode: string, lastUsed: number, at: number): void {
    this.clear(mode);
    if (this.closed) return;
    const generation = ++this.generation;
    // Armed from a job's events, which run in whatever request's context started the job: the expiry is nobody's.
    const timer = outsideRequest(() =>
      setTimeout(() => void this.submit(mode, generation), Math.max(0, at - Date.now())),
    );
    timer.unref();
    this.expiries.set(mode, { generation, lastUsed, at, timer });
  }

  private clear(mode: string): void {
    const expiry = this.expiries.get(mode);
    if (!expiry) return;
    clearTimeout(expiry.timer);
    this.expiries.delete(mode);
  }

  /** One expiry job per host that serves, bound to it: each takes the mode off its own device, in its turn. */
  private async submit(mode: string, generation: number): Promise<void> {
    const expiry = this.expiries.get(mode);
    if (expiry?.generation !== generation) return;
    const hosts = this.hosts.accepting();
    try {
      if (hosts.length === 0) throw new Error('no model host serves');
      expiry.pending = new Set(hosts.map((host) => host.id));
      for (const host of hosts) {
        await this.pool.enqueue(
          new CustomJob({ handler: KEEP_ALIVE_HANDLER, args: [mode, generation] as const, host: host.id }),
        );
      }
    } catch (error) {
      if (this.expiries.get(mode)?.generation !== generation) return;
      this.logger.warn(
        `keep-alive of mode '${mode}' expired, but its unload could not be queued ` +
          `(${(error as Error).message}); trying again in ${RETRY_MS} ms`,
      );
      this.schedule(mode, expiry.lastUsed, Date.now() + RETRY_MS);
    }
  }

  /**
   * In the expiry job's turn on the device queue. An expiry takes the mode's base pipeline off the device, and with
   * it every mode on that base: while another of them still wants the device (in use, kept until evicted, or its
   * own keep-alive not yet run out), the pipeline stays, and the last of them to expire takes it off.
   */
  private async expired(host: HostSession, mode: string, generation: number): Promise<void> {
    const expiry = this.expiries.get(mode);
    if (expiry?.generation !== generation || (this.inUse.get(mode) ?? 0) > 0) return;
    expiry.pending?.delete(host.id);
    // The last host's job ends the expiry; until then the mode still counts as not yet expired for its sharers.
    if (!expiry.pending || expiry.pending.size === 0) this.expiries.delete(mode);
    const sharers = (await this.unloader.baseSharers(host, mode)).filter((other) => other !== mode);
    const keeping = sharers.filter((other) => this.wantsDevice(other));
    if (keeping.length > 0) {
      this.logger.log(
        `keep-alive of mode '${mode}' expired; its pipeline stays on the device for ${keeping
          .map((other) => `'${other}'`)
          .join(', ')}, which share it`,
      );
      return;
    }
    // None of them wants it: all their keys go, or the base would stay on the device under the keys of the modes
    // that expired before (whose own expiry left it to this one).
    await this.unloader.unloadNow(host, { modes: [mode, ...sharers] }, 'keep-alive');
  }

  /** In use, or kept until evicted: no expiry will take its pipeline off the device. */
  private wantsForGood(mode: string): boolean {
    if ((this.inUse.get(mode) ?? 0) > 0) return true;
    return this.modes.config.modes.has(mode) && this.modes.config.modes.get(mode)?.keepAliveMs === undefined;
  }

  /** Whether a mode still wants its pipeline on the device: in use, kept until evicted, or not yet expired. */
  private wantsDevice(mode: string): boolean {
    if ((this.inUse.get(mode) ?? 0) > 0) return true;
    const keepAliveMs = this.modes.config.modes.get(mode)?.keepAliveMs;
    if (keepAliveMs === undefined) return this.modes.config.modes.has(mode);
    return this.expiries.has(mode);
  }
}
