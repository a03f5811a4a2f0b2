import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModeSwitchTimeoutError,
  QueueFullError,
  QueueTimeoutError,
  ShuttingDownError,
  ModelHostUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { toHttpError } from '../errors/http-error.table.js';
import { ModesService } from '../modes/modes.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import { FifoScheduler } from './fifo.scheduler.js';
import type { JobImage } from './job-record.types.js';
import { JobStore } from './job.store.js';
import {
  CustomJob,
  GenerationJob,
  ModeSwitchJob,
  type Job,
  type JobContext,
  type JobHandle,
  type JobHandler,
  type ModeSwitchResult,
} from './job.types.js';
import { batchPartners } from './batching.js';
import { Fifo } from './fifo.js';
import { ModeAwareScheduler } from './mode-aware.scheduler.js';
import { ModelHostWorker, type SwitchFailure, type WorkItem, type WorkResult } from './model-host.worker.js';
import type { SchedulableJob, Scheduler, SchedulingContext } from './scheduler.js';
import { outsideRequest } from '../logging/outside-request.js';

export type { SwitchFailure } from './model-host.worker.js';

/** Told to a client whose job found the queue full. */
const RETRY_AFTER_SECONDS = 5;

/** After SHUTDOWN_GRACE_MS, how long a cancelled job gets to end (a generation stops at its next step). */
const CANCEL_SETTLE_MS = 10_000;

/** One function for every job's "nobody asked for the result" catch, not a closure per job. */
const ignore = (): void => undefined;
const isQueued = (entry: Entry): boolean => entry.queued;
const leftTheQueue = (entry: Entry): boolean => !entry.queued;

/** The handler the pool registers itself: `new CustomJob({ handler: RUN_TASK_HANDLER, args: [task, {...}] })`. */
export const RUN_TASK_HANDLER = 'model-host.run-task';

/**
 * A job the engine holds, from its submission to its end: what its scheduler orders (a SchedulableJob), what its
 * worker is handed (a WorkItem) and what its caller holds (a JobHandle), one object for all three.
 */
class Entry implements WorkItem, SchedulableJob, JobHandle<unknown> {
  readonly kind: Job['kind'];
  readonly mode: string | undefined;
  /** A custom job bound to one model host. */
  readonly host: string | undefined;
  /** It ran on a model host that died under it, and waits to run once more on another. */
  retried = false;
  /** Jobs ahead of it when it was submitted (see JobHandle). */
  ahead = 0;
  /** Waiting in the queue (not yet started, cancelled or expired). */
  queued = true;
  /** Its caller cancelled it (not a shutdown, not the model host): the job ends `cancelled`. */
  cancelled = false;
  /** An abort was asked for; the controller itself is made only when someone asks for the signal. */
  aborted = false;
  private controller: AbortController | undefined;
  private readonly promise: Promise<unknown>;
  private settle!: (value: unknown) => void;
  private fail!: (error: unknown) => void;

  constructor(
    readonly id: string,
    readonly job: Job,
    readonly seq: number,
    readonly submittedAt: number,
    readonly handler: JobHandler | undefined,
    private readonly pool: WorkerPool,
  ) {
    this.kind = job.kind;
    this.mode = job.kind === 'custom' ? undefined : job.mode;
    this.host = job.kind === 'custom' ? job.host : undefined;
    this.promise = new Promise<unknown>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    // A caller that never asks for the result must not turn a failure into an unhandled rejection.
    this.promise.catch(ignore);
  }

  result(): Promise<unknown> {
    return this.promise;
  }

  cancel(): void {
    this.pool.cancelEntry(this);
  }

  /** Aborted when the job is cancelled; most jobs never ask for it, so most never make an AbortController. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }

  resolve({ value, generateMs }: WorkResult): void {
    const { job } = this;
    const image = job.kind === 'generation' ? imageOf(job, value as GeneratedImage) : undefined;
    this.pool.store.finish(this.id, { state: 'completed', generateMs, image });
    this.settle(value);
  }

  reject(error: unknown): void {
    const state = error instanceof JobCancelledError && this.cancelled ? 'cancelled' : 'failed';
    this.pool.store.finish(this.id, { state, error: toHttpError(error).body });
    this.fail(error);
  }
}

/**
 * The job engine: every job is a record in the JobStore (each change a JobEvent); the waiting ones are held in
 * the order its Scheduler chooses (mode-aware, or FIFO at SCHEDULER_MAX_DELAY_MS=0) and handed, one at a time,
 * to a ModelHostWorker per model host (HostsService: one per device). Each free host gets work it can run without
 * a load first; a job that needs a load goes to the free host where its mode costs least to bring in (see
 * `placeSwitch`). At most QUEUE_MAX jobs wait (the running ones not counted), each at most QUEUE_TIMEOUT_MS.
 *
 * When a model host is lost, its running generation runs once more on another host that serves (same seed, same
 * image), or fails (503) when there is none; queued jobs stay queued, and new ones are refused (503) only while no
 * host serves. At shutdown (docs/OPERATIONS.md) new work and the queued jobs are answered 503 at once, and running
 * jobs get SHUTDOWN_GRACE_MS before they are cancelled.
 */
@Injectable()
export class WorkerPool implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(WorkerPool.name);
  private readonly waiting = new Map<string, Entry>();
  /**
   * Waiting jobs in submission order, for QUEUE_TIMEOUT_MS: one value for all, so deadlines come in this order and
   * one timer, for the oldest, serves them all. Jobs that left the queue are skipped at the head.
   */
  private readonly timeouts = new Fifo<Entry>();
  private timeoutTimer: NodeJS.Timeout | undefined;
  /** What each worker runs: one job, or the generations of one batch. */
  private readonly running = new Map<ModelHostWorker, Entry[]>();
  /** Generations whose model host died under them, waiting for another: they go before the queue. */
  private readonly retries: Entry[] = [];
  /** Wakes the dispatch when a free host waits only for time (a job turning overdue, or worth a replica). */
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly scheduler: Scheduler;
  private seq = 0;
  private readonly handlers = new Map<string, JobHandler>();
  private closed = false;
  /** The workers jobs are dispatched to: one per model host. */
  readonly workers: readonly ModelHostWorker[];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    readonly hosts: HostsService,
    readonly store: JobStore,
  ) {
    this.scheduler =
      config.schedulerMaxDelayMs === 0
        ? new FifoScheduler()
        : new ModeAwareScheduler({ maxDelayMs: config.schedulerMaxDelayMs });
    this.registerHandler(
      RUN_TASK_HANDLER,
      function (this: JobContext, task: string, args: Record<string, unknown> = {}) {
        return this.host.client.runTask(task, args);
      },
    );
    const deps = { modes, store, idle: () => this.drain() };
    this.workers = hosts.sessions.map((session) => new ModelHostWorker(session, deps));
    for (const worker of this.workers) this.watch(worker.session);
  }

  /** The jobs running on a host now (a batch counts each member). */
  runningOn(host: string): number {
    for (const [worker, entries] of this.running) if (worker.session.id === host) return entries.length;
    return 0;
  }

  /** The waiting jobs bound to a host (custom jobs that name it). */
  waitingFor(host: string): number {
    let count = 0;
    for (const entry of this.waiting.values()) if (entry.host === host) count += 1;
    return count;
  }

  /** The last failed mode switch, cleared by the next successful one. */
  get lastSwitchError(): SwitchFailure | undefined {
    return this.workers.find((worker) => worker.lastSwitchError)?.lastSwitchError;
  }

  /**
   * A reload that moves model_root or lora_root gives the model hosts the new roots at once; one after a start that
   * could not load the default mode tries it again (the user may just have fixed its path).
   */
  onModuleInit(): void {
    this.modes.onReload(() => {
      if (this.closed) return;
      for (const worker of this.workers) worker.syncRootsNow();
      if (this.workers.some((worker) => worker.connection.startupFailure !== undefined)) this.retryDefaultMode();
    });
  }

  /** Brings each model host into service (in the background: HTTP and /health answer meanwhile). */
  onApplicationBootstrap(): void {
    for (const worker of this.workers) void worker.start();
  }

  /** Jobs waiting their turn (the running ones not counted): the figure QUEUE_MAX bounds. */
  get queueSize(): number {
    return this.waiting.size;
  }

  /** True while a job runs. */
  get busy(): boolean {
    return this.running.size > 0;
  }

  /** Why no model host can take work now, or undefined when one can. */
  get unavailableReason(): string | undefined {
    if (this.workers.some((worker) => worker.connection.accepting)) return undefined;
    return this.workers.map((worker) => worker.connection.unavailableReason).find((reason) => reason !== undefined);
  }

  /**
   * The mode the device will hold once everything queued so far has run: the mode of the last generation or
   * switch in the queue, else the running one's, else the active mode. A request that names no mode uses it.
   */
  expectedMode(): string | undefined {
    const context = this.planContext();
    const plan = this.scheduler.plan(context);
    for (let i = plan.length - 1; i >= 0; i -= 1) {
      const mode = plan[i]?.mode;
      if (mode !== undefined) return mode;
    }
    return context.activeMode;
  }

  /** Each waiting job's place in the order the scheduler will run them: 1 runs next. */
  positions(): Map<string, number> {
    return new Map(this.scheduler.plan(this.planContext()).map((job, index) => [job.id, index + 1]));
  }

  /** Cancels the job with this id (see JobHandle.cancel); false when it is not waiting or running. */
  cancelJob(id: string): boolean {
    const entry = this.waiting.get(id) ?? this.runningEntries().find((running) => running.id === id);
    if (!entry) return false;
    this.cancelEntry(entry);
    return true;
  }

  /** Lets `new CustomJob({ handler: name, args })` run `handler(...args)`: a job that is plain data. */
  registerHandler<T, A extends readonly unknown[]>(name: string, handler: JobHandler<T, A>): void {
    if (this.handlers.has(name)) throw new Error(`a job handler is already registered as '${name}'`);
    this.handlers.set(name, handler as unknown as JobHandler);
  }

  /**
   * @throws QueueFullError at once when QUEUE_MAX jobs are already waiting.
   * @throws ModelHostUnavailableError while the model host is down (queued jobs wait for it; new ones are refused).
   * @throws UnknownTaskError for a CustomJob naming a handler nobody registered.
   */
  submitJob(job: GenerationJob): JobHandle<GeneratedImage>;
  submitJob(job: ModeSwitchJob): JobHandle<ModeSwitchResult>;
  submitJob<T, A extends readonly unknown[]>(job: CustomJob<T, A>): JobHandle<T>;
  submitJob(job: Job): JobHandle<unknown> {
    if (this.closed) throw new ShuttingDownError('the server takes no new work');
    const down =
      job.kind === 'custom' && job.host !== undefined ? this.boundHostDown(job.host) : this.unavailableReason;
    if (down !== undefined) {
      throw new ModelHostUnavailableError(`the model host went away (${down}); it is being brought back`);
    }
    if (this.waiting.size >= this.config.queueMax) {
      throw new QueueFullError(this.config.queueMax, RETRY_AFTER_SECONDS);
    }
    if (job.kind === 'custom' && typeof job.handler === 'string' && !this.handlers.has(job.handler)) {
      throw new UnknownTaskError(`no job handler is registered as '${job.handler}'`);
    }

    const mode = job.kind === 'custom' ? undefined : job.mode;
    const { id, created_ms: submittedAt } = this.store.create(
      job.kind,
      mode,
      job.kind === 'generation' ? job.params.seed : undefined,
    );
    const handler = job.kind === 'custom' ? this.handlerOf(job) : undefined;
    const entry = new Entry(id, job, ++this.seq, submittedAt, handler, this);
    this.timeouts.push(entry);
    this.timeoutTimer ??= this.armTimeout(entry);
    this.waiting.set(entry.id, entry);
    this.scheduler.add(entry);
    // A barrier (a switch, a custom job) runs only as the oldest waiting job, so every job waiting now goes first:
    // O(1), where the plan a generation's position needs is O(n) (a queue filled with custom jobs stays linear).
    const planned =
      job.kind === 'generation'
        ? this.scheduler.plan(this.planContext()).findIndex((waiting) => waiting.id === entry.id)
        : this.scheduler.size - 1;
    entry.ahead = planned;
    for (const worker of this.workers) if (worker.busy) entry.ahead += 1;
    this.drain();
    return entry;
  }

  /** Takes no new work and answers every queued job 503 "shutting down", at once; running jobs go on. */
  beginShutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const worker of this.workers) worker.connection.close();
    clearTimeout(this.wakeTimer);
    const queued = [...this.waiting.values()];
    for (const entry of queued) {
      this.dequeue(entry);
      entry.reject(new ShuttingDownError('the server stopped before this job started'));
    }
    for (const entry of this.retries.splice(0)) {
      entry.reject(new ShuttingDownError('the server stopped before this job could run again'));
    }
    this.logger.log(
      `shutting down: new work and ${queued.length} queued job(s) answered 503` +
        (this.running.size > 0 ? '; waiting for the running job' : ''),
    );
  }

  /**
   * beginShutdown, then lets the running jobs finish within `graceMs`; past it they are cancelled (a generation
   * stops at its next step) and get CANCEL_SETTLE_MS to end. Resolves when nothing runs any more.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.beginShutdown();
    if (this.running.size === 0) return;
    if (await this.settlesWithin(graceMs)) return;
    this.logger.warn(`the running job did not finish within ${graceMs} ms (SHUTDOWN_GRACE_MS): cancelling it`);
    for (const entry of this.runningEntries()) entry.abort();
    if (await this.settlesWithin(CANCEL_SETTLE_MS)) return;
    // A load or a custom job cannot be stopped from here: answer its caller, and stop regardless.
    this.logger.warn(`the running job did not end ${CANCEL_SETTLE_MS} ms after its cancel: stopping regardless`);
    for (const entry of this.runningEntries())
      entry.reject(new ShuttingDownError('the server stopped while this job ran'));
  }

  onModuleDestroy(): Promise<void> {
    return this.shutdown(this.config.shutdownGraceMs);
  }

  /** In the queue, like a switch: a load that works makes the connection `serving` (see ModelHostConnection). */
  private retryDefaultMode(): void {
    const mode = this.modes.config.defaultMode;
    this.logger.log(`modes.yaml reloaded after a failed start: loading the default mode '${mode}' again`);
    try {
      this.submitJob(new ModeSwitchJob(mode));
    } catch (error) {
      this.logger.warn(`could not queue the default mode's load: ${(error as Error).message}`);
    }
  }

  /** Why the host a custom job names cannot take it; undefined when it can. */
  private boundHostDown(id: string): string | undefined {
    const worker = this.workers.find((candidate) => candidate.session.id === id);
    if (!worker)
      throw new UnknownTaskError(`no model host '${id}' (hosts: ${this.workers.map((w) => w.session.id).join(', ')})`);
    return worker.connection.accepting ? undefined : (worker.connection.unavailableReason ?? 'stopping');
  }

  /** Logs what a connection's change means for the queue, and resumes it when the model host serves again. */
  private watch(session: HostSession): void {
    let wasLost = false;
    const others = this.workers.length > 1;
    session.connection.onState((state, reason) => {
      if (state === 'lost') {
        wasLost = true;
        if (others) this.logger.error(`model host ${session.id} lost (${reason}): the other hosts go on`);
        else this.logger.error(`${this.waiting.size} queued job(s) wait for the model host (${reason})`);
      }
      if (state !== 'serving') return;
      if (wasLost) {
        this.logger.log(
          `model host ${session.id} back: registry re-synced, mode '${session.registry.currentMode ?? '(none)'}' ` +
            `active; resuming ${this.waiting.size} queued job(s)`,
        );
      }
      wasLost = false;
      this.drain();
    });
  }

  /**
   * What positions and "will switch after N" are planned against: the mode most recently made active on any host.
   * With one host that is exactly what runs; with several, the plan is the order jobs are taken in.
   */
  private planContext(): SchedulingContext {
    let latest: ModelHostWorker | undefined;
    for (const worker of this.workers) {
      if (worker.activeMode !== undefined && (!latest || worker.activatedAt > latest.activatedAt)) latest = worker;
    }
    return { activeMode: latest?.activeMode, now: Date.now() };
  }

  /** True when every running job has ended within `ms`. */
  private async settlesWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      Promise.all(this.workers.map((worker) => worker.settled())).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false))),
    ]);
    clearTimeout(timer);
    return settled;
  }

  /** JobHandle.cancel. */
  cancelEntry(entry: Entry): void {
    entry.cancelled = true;
    const retry = this.retries.indexOf(entry);
    if (retry !== -1) {
      this.retries.splice(retry, 1);
      entry.abort();
      entry.reject(new JobCancelledError('job cancelled while it waited to run again'));
    } else if (this.dequeue(entry)) {
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else if (this.runningEntries().includes(entry)) {
      entry.abort();
    }
  }

  private dequeue(entry: Entry): boolean {
    const waited = this.waiting.delete(entry.id);
    if (waited) this.scheduler.remove(entry.id);
    this.leftQueue(entry);
    return waited;
  }

  /** The entry no longer waits: the timeouts' head moves past the entries that left. */
  private leftQueue(entry: Entry): void {
    entry.queued = false;
    const { timeouts } = this;
    if (timeouts.skip(leftTheQueue) === undefined) {
      clearTimeout(this.timeoutTimer);
      this.timeoutTimer = undefined;
    } else if (timeouts.size > 2 * this.waiting.size + 1024) {
      // Jobs run out of submission order (the mode-aware scheduler) stay behind an older waiting one: drop them.
      timeouts.retain(isQueued);
    }
  }

  /** One timer, at the oldest waiting job's deadline. */
  private armTimeout(oldest: Entry): NodeJS.Timeout {
    const timer = setTimeout(
      () => this.expireDue(),
      Math.max(0, oldest.submittedAt + this.config.queueTimeoutMs - Date.now()),
    );
    timer.unref();
    return timer;
  }

  /** Expires every waiting job whose QUEUE_TIMEOUT_MS has passed, oldest first, then waits for the next. */
  private expireDue(): void {
    this.timeoutTimer = undefined;
    const now = Date.now();
    for (;;) {
      const oldest = this.timeouts.peek();
      if (!oldest) return;
      if (oldest.submittedAt + this.config.queueTimeoutMs > now) {
        // A job submitted by a listener of an expiry meanwhile may have armed one, for its own later deadline.
        clearTimeout(this.timeoutTimer);
        this.timeoutTimer = this.armTimeout(oldest);
        return;
      }
      // Leaves the queue, moving the head past it (and clearing the timer when nothing is left).
      this.expire(oldest);
    }
  }

  /** QUEUE_TIMEOUT_MS passed before the entry's turn came. */
  private expire(entry: Entry): void {
    if (!this.dequeue(entry)) return;
    const waited = Date.now() - entry.submittedAt;
    const down = this.unavailableReason;
    const loading = this.workers.find((worker) => worker.switching !== undefined)?.switching;
    if (down !== undefined) {
      entry.reject(
        new ModelHostUnavailableError(
          `the model host went away (${down}); gave up after waiting ${waited} ms (QUEUE_TIMEOUT_MS)`,
        ),
      );
    } else if (loading !== undefined) {
      entry.reject(
        new ModeSwitchTimeoutError(
          loading,
          `waited ${waited} ms in the queue while mode '${loading}' was loading (QUEUE_TIMEOUT_MS)`,
        ),
      );
    } else {
      entry.reject(new QueueTimeoutError(waited));
    }
  }

  /**
   * Hands work to the free hosts: first the generations that died with another host, then, while any host is free,
   * each free host what the scheduler chooses for it without a load (its active mode, or one it holds), then a job
   * that needs a load, to the free host where that costs least. A free host that is left only jobs better left to
   * a busy host waits; a timer wakes it when one turns overdue or has waited past SCHEDULER_REPLICA_AFTER_MS.
   */
  private drain(): void {
    if (this.closed) return;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.dispatchRetries();
    for (;;) {
      const free = this.workers.filter((worker) => worker.available);
      if (free.length === 0) return;
      const now = Date.now();
      const avoid = this.avoidedModes(now);
      let placed = false;
      for (const worker of free) {
        const chosen = this.scheduler.peek(this.contextOf(worker, now, avoid));
        if (chosen && (chosen.mode === undefined || worker.holds(chosen.mode))) {
          this.take(worker, chosen.id);
          placed = true;
        }
      }
      if (placed) continue;
      for (const worker of free) {
        const chosen = this.scheduler.peek(this.contextOf(worker, now, avoid));
        if (!chosen) continue;
        this.take(chosen.mode === undefined ? worker : this.placeSwitch(chosen.mode, free), chosen.id);
        placed = true;
        break;
      }
      if (!placed) {
        this.wakeAt(now, free, avoid);
        return;
      }
    }
  }

  /** What the scheduler chooses against for `worker`. */
  private contextOf(worker: ModelHostWorker, now: number, avoid: ReadonlySet<string>): SchedulingContext {
    const resident = worker.residentModes();
    const ownAvoid = new Set([...avoid].filter((mode) => !resident.has(mode) && mode !== worker.activeMode));
    return { activeMode: worker.activeMode, now, host: worker.session.id, resident, avoid: ownAvoid };
  }

  /**
   * Modes active on a busy host whose oldest waiting job has waited less than SCHEDULER_REPLICA_AFTER_MS: a free
   * host leaves them to that host rather than load a second copy. Past it, a free host loads the mode too.
   */
  private avoidedModes(now: number): Set<string> {
    const avoid = new Set<string>();
    if (this.workers.length < 2) return avoid;
    for (const worker of this.workers) {
      const mode = worker.activeMode;
      if (!worker.busy || mode === undefined) continue;
      const oldest = this.scheduler.oldestOf(mode);
      if (oldest && now - oldest.submittedAt < this.config.replicaAfterMs) avoid.add(mode);
    }
    return avoid;
  }

  /**
   * Of the free hosts, the one where `mode` costs least to make active: where it is on the device, else in the RAM
   * tier, else the one with the most free device memory (the load evicts least there); the first on a tie.
   */
  private placeSwitch(mode: string, free: readonly ModelHostWorker[]): ModelHostWorker {
    const rank = (worker: ModelHostWorker): number => {
      const tier = worker.tierOf(mode);
      return tier === 'device' ? 2 : tier === 'ram' ? 1 : 0;
    };
    let best = free[0];
    if (!best) throw new Error('placeSwitch needs a free host');
    for (const worker of free) {
      const better = rank(worker) - rank(best) || worker.availableBytes() - best.availableBytes();
      if (better > 0) best = worker;
    }
    return best;
  }

  /** A free host waits on jobs better left to a busy one: wake the dispatch when that changes by time alone. */
  private wakeAt(now: number, free: readonly ModelHostWorker[], avoid: ReadonlySet<string>): void {
    if (this.scheduler.size === 0) return;
    const deadlines = free.flatMap((worker) => this.scheduler.nextDeadline(this.contextOf(worker, now, avoid)) ?? []);
    for (const mode of avoid) {
      const oldest = this.scheduler.oldestOf(mode);
      if (oldest) deadlines.push(oldest.submittedAt + this.config.replicaAfterMs - now);
    }
    if (deadlines.length === 0) return;
    this.wakeTimer = setTimeout(() => this.drain(), Math.max(1, Math.min(...deadlines)));
    this.wakeTimer.unref();
  }

  /** Takes the waiting job `id` (with its batch partners) off the queue and runs it on `worker`. */
  private take(worker: ModelHostWorker, id: string): void {
    const entry = this.waiting.get(id);
    this.scheduler.remove(id);
    if (!entry) return;
    const partners = this.batchPartners(entry);
    if (partners.length > 0) this.dispatchBatch(worker, [entry, ...partners]);
    else this.dispatch(worker, entry);
  }

  /** Generations whose host died under them run once more, each on a free host that serves (oldest first). */
  private dispatchRetries(): void {
    while (this.retries.length > 0) {
      const entry = this.retries[0];
      if (!entry) return;
      const free = this.workers.filter((worker) => worker.available);
      if (free.length === 0) return;
      this.retries.shift();
      const worker = entry.mode === undefined ? free[0] : this.placeSwitch(entry.mode, free);
      if (!worker) return;
      this.store.moved(entry.id, worker.session.id);
      this.logger.warn(`job ${entry.id} runs again on model host ${worker.session.id} (its host died under it)`);
      this.dispatch(worker, entry, false);
    }
  }

  /**
   * A generation whose model host died under it runs once more on another host, when one serves: true when it was
   * put back for that (the caller must not settle it).
   */
  private retryElsewhere(error: unknown, entry: Entry, worker: ModelHostWorker): boolean {
    if (
      this.closed ||
      entry.retried ||
      entry.aborted ||
      entry.job.kind !== 'generation' ||
      !(error instanceof ModelHostUnavailableError) ||
      worker.connection.accepting ||
      !this.workers.some((other) => other !== worker && other.connection.accepting)
    ) {
      return false;
    }
    entry.retried = true;
    this.retries.push(entry);
    return true;
  }

  /** The waiting generations that run in one call with `first` (see batchPartners), taken off the queue. */
  private batchPartners(first: Entry): Entry[] {
    if (first.job.kind !== 'generation') return [];
    const plan = this.scheduler.plan({ activeMode: first.job.mode, now: Date.now() });
    const ids = batchPartners(first.job, plan, (id) => this.waiting.get(id)?.job, this.config.maxBatch);
    const partners = ids.flatMap((id) => this.waiting.get(id) ?? []);
    for (const partner of partners) this.scheduler.remove(partner.id);
    return partners;
  }

  /** Each member keeps its own record, events, progress, cancel and result; the worker is free once all ended. */
  private dispatchBatch(worker: ModelHostWorker, entries: Entry[]): void {
    for (const entry of entries) this.start(entry, worker);
    this.running.set(worker, entries);
    const results = outsideRequest(() =>
      worker.runBatch(entries.map((entry) => ({ id: entry.id, job: entry.job, signal: entry.signal }))),
    );
    const settled = results.map((result, i) => {
      const entry = entries[i];
      return entry
        ? result.then(
            (done) => entry.resolve(done),
            (error: unknown) => {
              if (!this.retryElsewhere(error, entry, worker)) entry.reject(this.shutdownFailure(error, entry));
            },
          )
        : result;
    });
    void Promise.allSettled(settled).finally(() => {
      this.running.delete(worker);
      this.drain();
    });
  }

  private start(entry: Entry, worker: ModelHostWorker): void {
    this.waiting.delete(entry.id);
    this.leftQueue(entry);
    this.store.started(entry.id, worker.session.id);
  }

  private runningEntries(): Entry[] {
    return [...this.running.values(), this.retries].flat();
  }

  /** `fresh`: the job starts now (false: a retry, already running). */
  private dispatch(worker: ModelHostWorker, entry: Entry, fresh = true): void {
    if (fresh) this.start(entry, worker);
    this.running.set(worker, [entry]);
    const ended = (): void => {
      this.running.delete(worker);
      this.drain();
    };
    // Not in the context of the request that happened to free the worker (logging/outside-request.ts).
    void outsideRequest(() => worker.run(entry)).then(
      (result) => {
        try {
          entry.resolve(result);
        } finally {
          ended();
        }
      },
      (error: unknown) => {
        try {
          if (!this.retryElsewhere(error, entry, worker)) entry.reject(this.shutdownFailure(error, entry));
        } finally {
          ended();
        }
      },
    );
  }

  private handlerOf(job: CustomJob): JobHandler | undefined {
    return typeof job.handler === 'string' ? this.handlers.get(job.handler) : job.handler;
  }

  /** A job cancelled because SHUTDOWN_GRACE_MS ran out says so. */
  private shutdownFailure(error: unknown, entry: Entry): unknown {
    if (this.closed && error instanceof JobCancelledError && entry.aborted) {
      return new ShuttingDownError(
        `the job was cancelled: it did not finish within ${this.config.shutdownGraceMs} ms (SHUTDOWN_GRACE_MS)`,
      );
    }
    return error;
  }
}

function imageOf(job: GenerationJob, image: GeneratedImage): JobImage {
  return { png: image.png, mode: job.mode, seed: image.seed, superres: image.superresApplied };
}
