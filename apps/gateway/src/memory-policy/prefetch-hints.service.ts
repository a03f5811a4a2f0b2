import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EventBus } from '../events/event-bus.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import { outsideRequest } from '../logging/outside-request.js';
import { WorkerPool } from '../queue/worker-pool.service.js';

/** How many waiting jobs, in the plan's order, the hints look at (InvokeAI's multi-GPU dequeue looks at 32). */
export const PREFETCH_LOOKAHEAD_JOBS = 64;
/** How many modes one model host is asked to prefetch at most, most wanted first (its RAM tier decides the rest). */
export const PREFETCH_MODES_PER_HOST = 2;
/** Hints are worked out at most this often: the plan is O(n) in the queue, and a burst of jobs is one change. */
const HINT_INTERVAL_MS = 100;

/** The job events that change the plan's head, and what the hosts hold. */
const TRIGGERS = ['job.queued', 'job.started', 'job.completed', 'job.failed', 'job.cancelled', 'model.', 'host.state'];

/**
 * Tells each model host the modes the queue's plan will need next that it does not hold on its device (PREFETCH):
 * while the GPU denoises job N, the model host builds job N+1's pipeline into its RAM tier, and the switch becomes a
 * RAM-tier switch. A hint, never a command: the model host builds in the background, below the running generation,
 * within RAM_CACHE_BYTES, evicting nothing, and drops a prefetch the latest hint no longer names (a cancelled job's).
 * With several hosts each mode is hinted to one host only: the one holding it in its RAM tier, else the one with
 * the fewest hints (the engine's placement prefers a free host that holds a mode in its RAM tier).
 */
@Injectable()
export class PrefetchHintsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(PrefetchHintsService.name);
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastRun = 0;
  private running = false;
  private again = false;
  /** The keys last hinted to each host (joined), so an unchanged hint is not sent again. */
  private readonly sent = new Map<string, string>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly bus: EventBus,
    private readonly pool: WorkerPool,
    private readonly modes: ModesService,
    private readonly hosts: HostsService,
  ) {}

  onModuleInit(): void {
    if (!this.config.prefetch) return;
    this.unsubscribe = this.bus.subscribe((event) => {
      // A host that came back lost what it had built: its next hint is sent whatever was sent before.
      if (event.type === 'host.state') this.sent.delete(event.host);
      this.schedule();
    }, TRIGGERS);
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.lastRun + HINT_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void outsideRequest(() => this.run());
    }, wait);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.running = true;
    this.lastRun = Date.now();
    try {
      const hints = this.hintsOf(await this.upcomingModes(), this.hosts.accepting());
      await Promise.all([...hints].map(([host, modes]) => this.send(host, modes)));
    } catch (error) {
      this.logger.warn(`prefetch hints: ${(error as Error).message}`);
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /**
   * The distinct modes of the running jobs, then of the first PREFETCH_LOOKAHEAD_JOBS waiting jobs in the order the
   * plan runs them. A running job's mode stays in the hint until it is on its host's device: a job that just
   * started is about to load the pipeline its host built for it.
   */
  private async upcomingModes(): Promise<ResolvedMode[]> {
    const running = await Promise.resolve(this.pool.store.list({ state: 'running', limit: PREFETCH_LOOKAHEAD_JOBS }));
    const positions = await Promise.resolve(this.pool.positions());
    const names: (string | null | undefined)[] = running.map((job) => job.mode);
    for (const id of positions.keys()) {
      if (names.length >= running.length + PREFETCH_LOOKAHEAD_JOBS) break;
      names.push((await Promise.resolve(this.pool.store.get(id)))?.mode);
    }
    const config = this.modes.config;
    const upcoming = new Map<string, ResolvedMode>();
    for (const name of names) {
      const mode = name === undefined || name === null ? undefined : config.modes.get(name);
      if (mode && !upcoming.has(mode.name)) upcoming.set(mode.name, mode);
    }
    return [...upcoming.values()];
  }

  /** Each serving host's hint: the upcoming modes no host holds on its device, each given to one host. */
  private hintsOf(upcoming: readonly ResolvedMode[], hosts: readonly HostSession[]): Map<HostSession, ResolvedMode[]> {
    const hints = new Map<HostSession, ResolvedMode[]>(hosts.map((host) => [host, []]));
    const tierOf = (host: HostSession, mode: ResolvedMode) =>
      host.registry.residentModels().find((entry) => entry.key === mode.key)?.tier;
    for (const mode of upcoming) {
      if (hosts.some((host) => host.registry.activeKey === mode.key || tierOf(host, mode) === 'device')) continue;
      const target =
        hosts.find((host) => tierOf(host, mode) === 'ram') ??
        hosts.reduce<HostSession | undefined>(
          (fewest, host) =>
            (hints.get(host)?.length ?? 0) < (fewest ? (hints.get(fewest)?.length ?? 0) : Infinity) ? host : fewest,
          undefined,
        );
      const list = target && hints.get(target);
      if (list && list.length < PREFETCH_MODES_PER_HOST) list.push(mode);
    }
    return hints;
  }

  private async send(host: HostSession, modes: readonly ResolvedMode[]): Promise<void> {
    const keys = modes.map((mode) => mode.key).join(',');
    if (this.sent.get(host.id) === keys) return;
    this.sent.set(host.id, keys);
    try {
      const { wanted, skipped } = await host.client.prefetch(modes);
      this.logger.debug(
        `prefetch hint to ${host.id}: ${keys || 'nothing'} (building or held: ${wanted.join(', ') || 'none'}; ` +
          `skipped: ${skipped.join(', ') || 'none'})`,
      );
    } catch (error) {
      // A hint that did not arrive is sent again with the next change.
      this.sent.delete(host.id);
      this.logger.debug(`prefetch hint to ${host.id} not delivered: ${(error as Error).message}`);
    }
  }
}
