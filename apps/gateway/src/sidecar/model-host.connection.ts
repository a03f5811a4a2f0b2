import { setTimeout as sleep } from 'node:timers/promises';

import { Logger } from '@nestjs/common';

import { RegistryService } from '../registry/registry.service.js';
import type { ModelHost, ModelHostLossSource } from './model-host.js';

/**
 * The model host as its connection sees it: `starting` until the default mode is loaded, `serving`, `lost` (its
 * process ended, or its health check says NOT_SERVING), `recovering` (it serves again; the registry is being
 * re-synced), `stopping` (the gateway got SIGTERM or SIGINT). New work is taken only while `serving` or `starting`.
 */
export type ModelHostState = 'starting' | 'serving' | 'lost' | 'recovering' | 'stopping';

export type ModelHostStateListener = (state: ModelHostState, reason: string | undefined) => void;

/** What the connection needs from the worker that runs jobs on the model host, to bring it back into service. */
export interface RecoveryHooks {
  /** Resolves once the job running on the model host (if any) has ended. */
  settled(): Promise<void>;
  /** Loads the mode that was active again, on a model host that serves again. */
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

/**
 * The one owner of a model host's lifecycle: its state, the loss of its process or of its health, and its
 * recovery (wait until it serves, re-sync the registry from GetMemory, load the active mode again). Every change
 * of state is told to the listeners of `onState`; health, status and the worker read `state`.
 */
export class ModelHostConnection {
  private readonly logger = new Logger(ModelHostConnection.name);
  private readonly listeners = new Set<ModelHostStateListener>();
  private readonly stop = new AbortController();
  private readonly healthWatch: NodeJS.Timeout;
  private healthCheckInFlight = false;
  private healthMisses = 0;
  /** Why the model host cannot take work; undefined while it can. */
  private down: string | undefined;
  private resyncing = false;
  private recovering: Promise<void> | undefined;
  private hooks: RecoveryHooks = { settled: () => Promise.resolve(), restore: () => Promise.resolve() };

  constructor(
    readonly host: ModelHost,
    losses: ModelHostLossSource,
    private readonly registry: RegistryService,
    private readonly startupTimeoutMs: number,
  ) {
    losses.onLost((reason) => this.lost(reason));
    this.healthWatch = setInterval(() => void this.checkServing(), HEALTH_WATCH_MS);
    this.healthWatch.unref();
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

  /** Takes work: neither lost, recovering nor stopping. */
  get accepting(): boolean {
    return this.down === undefined && !this.stop.signal.aborted;
  }

  /** Calls `listener` on each change of state; the returned function unsubscribes. */
  onState(listener: ModelHostStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  attach(hooks: RecoveryHooks): void {
    this.hooks = hooks;
  }

  /** The gateway stops: no recovery, no health watch any more. */
  close(): void {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    clearInterval(this.healthWatch);
    this.emit(undefined);
  }

  /** The model host is gone: no work is taken until it serves again and is re-synced. */
  lost(reason: string): void {
    if (this.stop.signal.aborted) return;
    if (this.down === undefined) {
      this.down = reason;
      this.logger.error(`model host lost (${reason}): new work gets 503 until it is back`);
      this.emit(reason);
    }
    this.registry.clear();
    this.recovering ??= this.recover().finally(() => (this.recovering = undefined));
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
        await this.host.waitForReady(this.startupTimeoutMs, signal);
        this.resyncing = true;
        this.emit(this.down);
        this.registry.clear();
        this.registry.recordMemory(await this.host.getMemory());
        await this.hooks.restore();
        this.registry.markStartedUp();
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

  private emit(reason: string | undefined): void {
    const state = this.state;
    for (const listener of [...this.listeners]) listener(state, reason);
  }
}
