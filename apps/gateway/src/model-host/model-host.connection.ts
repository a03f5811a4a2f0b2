import { setTimeout as sleep } from 'node:timers/promises';

import { Logger } from '@nestjs/common';

import type { AppConfig } from '../config/app-config.js';
import type { RegistryService } from '../registry/registry.service.js';
import type { ModelHost, ModelHostProcess } from './model-host.js';

/**
 * The model host as its connection sees it: `starting` until the default mode is loaded, `serving`, `lost` (its
 * process ended, or its health check says NOT_SERVING), `recovering` (it serves again; the registry is being
 * re-synced), `stopping` (the gateway got SIGTERM or SIGINT). New work is taken only while `serving` or `starting`.
 */
export type ModelHostState = 'starting' | 'serving' | 'lost' | 'recovering' | 'stopping';

export type ModelHostStateListener = (state: ModelHostState, reason: string | undefined) => void;

/** What the connection needs from the worker that runs jobs on the model host, to bring it into service. */
export interface ServiceHooks {
  /** Resolves once the job running on the model host (if any) has ended. */
  settled(): Promise<void>;
  /** Loads the default mode on a model host that has just started; rejects when it cannot. */
  bringUp(): Promise<void>;
  /** Loads the mode that was active again, on a model host that serves again after a loss. */
  restore(): Promise<void>;
}

/** Pause between two tries to bring a lost model host back into service. */
const RECOVERY_RETRY_MS = 1_000;
/** How often a connection that believes the model host serves asks it again (its health check). */
const HEALTH_WATCH_MS = 1_000;
/**
 * Health checks in a row that get no answer before the model host counts as lost. One is not enough: a model host
 * whose device thread holds the CPU may miss a check's deadline and still be fine. NOT_SERVING counts at once.
 */
const HEALTH_MISSES_LOST = 3;
/** The first pause before starting a lost process again; it doubles per loss, up to SIDECAR_RESTART_MAX_BACKOFF_MS. */
const FIRST_RESTART_DELAY_MS = 1_000;
/** A process that stayed up this long counts as healthy again: the next loss restarts it after the first delay. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * The one owner of a model host's lifecycle: its start (process, readiness, default mode), its state, the loss of
 * its process or of its health, the restart of a process the gateway runs (with a backoff), and its recovery (wait
 * until it serves, re-sync the registry from GetMemory, load the active mode again). Every change of state is
 * told to the listeners of `onState`; health, status and the job engine read `state`.
 */
export class ModelHostConnection {
  private readonly logger: Logger;
  private readonly listeners = new Set<ModelHostStateListener>();
  private readonly stop = new AbortController();
  private readonly healthWatch: NodeJS.Timeout;
  private healthCheckInFlight = false;
  private healthMisses = 0;
  /** Why the model host cannot take work; undefined while it can. */
  private down: string | undefined;
  private resyncing = false;
  private recovering: Promise<void> | undefined;
  private hooks: ServiceHooks = {
    settled: () => Promise.resolve(),
    bringUp: () => Promise.resolve(),
    restore: () => Promise.resolve(),
  };
  /** Why the start did not end `serving` (the default mode could not be loaded, say); cleared once a mode loads. */
  private startupError: string | undefined;
  private processStartedAt = 0;
  private restartDelayMs = FIRST_RESTART_DELAY_MS;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly host: ModelHost,
    private readonly process: ModelHostProcess,
    private readonly registry: RegistryService,
    private readonly config: AppConfig,
  ) {
    this.logger = new Logger(`ModelHostConnection ${registry.host}`);
    process.onLost((reason) => {
      this.lost(reason);
      this.restartProcess();
    });
    this.healthWatch = setInterval(() => void this.checkServing(), HEALTH_WATCH_MS);
    this.healthWatch.unref();
    registry.events.on((event) => {
      if (event.type === 'loaded' && event.host === registry.host) this.loadedAfterFailedStart(event.mode);
    });
  }

  get state(): ModelHostState {
    if (this.stop.signal.aborted) return 'stopping';
    if (this.down !== undefined) return this.resyncing ? 'recovering' : 'lost';
    return this.registry.ready ? 'serving' : 'starting';
  }

  /** Why the model host cannot take work now, or undefined when it can. */
  get unavailableReason(): string | undefined {
    return this.down;
  }

  /** Why the start failed while it is still `starting` for it; undefined otherwise. */
  get startupFailure(): string | undefined {
    return this.startupError;
  }

  /** Takes work: neither lost, recovering nor stopping. */
  get accepting(): boolean {
    return this.down === undefined && !this.stop.signal.aborted;
  }

  /** Calls `listener` on each change of state; the returned function unsubscribes. */
  onState(listener: ModelHostStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  attach(hooks: ServiceHooks): void {
    this.hooks = hooks;
  }

  /**
   * Starts the process (unless SIDECAR_ADDR names a model host already running), waits until it serves and has
   * the worker load the default mode: `serving` then. On failure the state stays `starting` (/ready 503 with the
   * reason, which is logged) until a mode loads: a job naming another mode, or the default mode tried again (the
   * engine does on each reload of modes.yaml). A process that ends meanwhile is recovered like any loss.
   */
  async start(): Promise<void> {
    try {
      this.startProcess();
      await this.process.waitForReady(this.config.modelHostStartupTimeoutMs, this.stop.signal);
      this.logger.log('model host serving; loading the default mode');
      await this.hooks.bringUp();
      this.registry.markStartedUp();
      this.logger.log(`ready: default mode '${this.registry.currentMode ?? '(none)'}' loaded`);
      this.emit(undefined);
    } catch (error) {
      if (this.stop.signal.aborted) return;
      this.startupError = (error as Error).message;
      this.logger.error(`startup failed, /ready stays 503 until a mode loads: ${this.startupError}`);
    }
  }

  /** The gateway stops: no recovery, no restart, no health watch any more. */
  close(): void {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    clearInterval(this.healthWatch);
    clearTimeout(this.restartTimer);
    this.emit(undefined);
  }

  /** The model host is gone: no work is taken until it serves again and is re-synced. */
  lost(reason: string): void {
    if (this.stop.signal.aborted) return;
    if (this.down === undefined) {
      this.down = reason;
      this.logger.error(`model host lost (${reason}): it takes no work until it is back`);
      this.emit(reason);
    }
    this.registry.clear();
    this.recovering ??= this.recover().finally(() => (this.recovering = undefined));
  }

  private startProcess(): void {
    this.processStartedAt = Date.now();
    this.process.start();
  }

  /** A process the gateway runs ended: start it again after a pause that doubles while it keeps ending. */
  private restartProcess(): void {
    if (!this.process.managed || this.stop.signal.aborted) return;
    const max = this.config.modelHostRestartMaxBackoffMs;
    if (Date.now() - this.processStartedAt >= HEALTHY_AFTER_MS) this.restartDelayMs = FIRST_RESTART_DELAY_MS;
    const delay = Math.min(this.restartDelayMs, max);
    this.restartDelayMs = Math.min(delay * 2, max);
    this.logger.warn(`restarting the model host in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stop.signal.aborted) this.startProcess();
    }, delay);
  }

  /** While it is believed to serve, asks the model host: NOT_SERVING, or HEALTH_MISSES_LOST misses, is lost. */
  private async checkServing(): Promise<void> {
    if (this.state !== 'serving' || this.healthCheckInFlight) return;
    this.healthCheckInFlight = true;
    try {
      const health = await this.host.healthStatus();
      this.healthMisses = health === 'no-answer' ? this.healthMisses + 1 : 0;
      if (this.state !== 'serving') return;
      if (health === 'not-serving') this.lost('its health check says it is not serving');
      else if (this.healthMisses >= HEALTH_MISSES_LOST) {
        this.lost(`its health check got no answer ${this.healthMisses} times in a row`);
      }
    } finally {
      this.healthCheckInFlight = false;
    }
  }

  /** Waits until the model host serves, re-syncs the registry, has the worker restore its mode, and serves. */
  private async recover(): Promise<void> {
    const signal = this.stop.signal;
    for (let attempt = 1; !signal.aborted; attempt += 1) {
      try {
        await this.hooks.settled();
        await this.host.waitForReady(this.config.modelHostStartupTimeoutMs, signal);
        this.resyncing = true;
        this.emit(this.down);
        this.registry.clear();
        this.registry.recordMemory(await this.host.getMemory());
        await this.hooks.restore();
        this.registry.markStartedUp();
        this.startupError = undefined;
        this.down = undefined;
        this.resyncing = false;
        this.healthMisses = 0;
        this.emit(undefined);
        return;
      } catch (error) {
        this.resyncing = false;
        if (signal.aborted) return;
        this.logger.warn(`model host not back yet (try ${attempt}): ${(error as Error).message}`);
        await sleep(RECOVERY_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /**
   * A mode loaded on a model host that serves but whose start failed: it can serve that mode, so it is ready (an
   * orchestrator would otherwise never send it work, nor count it healthy, after the user fixed the cause).
   */
  private loadedAfterFailedStart(mode: string): void {
    if (this.startupError === undefined || this.down !== undefined || this.stop.signal.aborted) return;
    this.startupError = undefined;
    this.registry.markStartedUp();
    this.logger.log(`ready: mode '${mode}' loaded (the start had failed)`);
    this.emit(undefined);
  }

  private emit(reason: string | undefined): void {
    const state = this.state;
    for (const listener of [...this.listeners]) listener(state, reason);
  }
}
