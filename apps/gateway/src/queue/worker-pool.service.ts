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
  QueueTimeoutError,
  ShuttingDownError,
  ModelHostUnavailableError,
  QueueUnavailableError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { toHttpError } from '../errors/http-error.table.js';
import { ModesService } from '../modes/modes.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import { newJobId } from './job.store.js';
import type { JobSnapshot } from './job-record.types.js';
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
import { cheapestHostFor, claimContext, NO_MODES } from './host-choice.js';
import { settleFromRecord } from './ended-elsewhere.js';
import { Entry, ignore } from './job-entry.js';
import { JobIndex } from './job-index.js';
import { jobOf, payloadOf } from './job-payload.js';
import { ModelHostWorker, type SwitchFailure } from './model-host.worker.js';
import { QueueExpiry } from './queue-expiry.js';
import {
  QUEUE_BACKEND,
  call,
  drive,
  isPromise,
  type Awaitable,
  type Enqueued,
  type JobPayload,
  type JobRecords,
  type QueueBackend,
  type QueuedJob,
} from './queue-backend.js';
import type { SchedulingContext } from './scheduler.js';
import { outsideRequest } from '../logging/outside-request.js';

export type { SwitchFailure } from './model-host.worker.js';

/** After SHUTDOWN_GRACE_MS, how long a cancelled job gets to end (a generation stops at its next step). */
const CANCEL_SETTLE_MS = 10_000;

/** The handler the pool registers itself: `new CustomJob({ handler: RUN_TASK_HANDLER, args: [task, {...}] })`. */
export const RUN_TASK_HANDLER = 'model-host.run-task';

/**
 * The job engine. Every job waits in a QueueBackend (QUEUE_BACKEND: the in-memory one by default), the seam where
 * admission (QUEUE_MAX), order (the Scheduler), claims, cancels, expiry (QUEUE_TIMEOUT_MS) and the job records
 * (JobRecords: each change a JobEvent) live, over plain data. The engine keeps what belongs to this process: the
 * handles (promises, cancel, abort), function handlers, and a ModelHostWorker per model host (HostsService: one per
 * device), to which it hands work one job (or one batch) at a time. Each free host claims work it can run without a
 * load first; a job that needs a load goes to the free host where its mode costs least to bring in (host-choice.ts).
 *
 * Every backend answer may be a Promise (a shared backend) or a plain value (in memory): the engine's steps run
 * through `drive`, synchronously while the answers are plain values. One drain runs at a time, and a host is
 * reserved while it claims, so a claim that resolves late never books a host twice.
 *
 * When a model host is lost, its running generation runs once more on another host that serves (same seed, same
 * image), or fails (503) when there is none; queued jobs stay queued, and new ones are refused (503) only while no
 * host serves. At shutdown (docs/OPERATIONS.md) new work and the queued jobs are answered 503 at once, and running
 * jobs get SHUTDOWN_GRACE_MS before they are cancelled.
 *
 * One file for one concern, the engine's own state (handles, running, retries, claims in flight) and every step
 * that changes it: submit, dispatch, cancel, retry, shutdown each read and write all of it. What needs none of it
 * stands apart: the host choice (host-choice.ts), the expiry timer (queue-expiry.ts), a job settled from another
 * gateway's record (ended-elsewhere.ts), the handle (job-entry.ts), the payload (job-payload.ts).
 */
@Injectable()
export class WorkerPool implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(WorkerPool.name);
  /** This engine's jobs that wait in the backend, by id: their handles (and function handlers). */
  private readonly entries = new JobIndex<Entry>();
  /** QUEUE_TIMEOUT_MS: one timer, at the backend's next deadline. */
  private readonly expiry: QueueExpiry;
  /** What each worker runs: one job, or the generations of one batch. */
  private readonly running = new Map<ModelHostWorker, Entry[]>();
  /** Generations whose model host died under them, waiting for another: they go before the queue. */
  private readonly retries: Entry[] = [];
  /** Jobs claimed for a host that could not take them once the claim answered: they go before the queue. */
  private readonly unplaced: Entry[] = [];
  /** Hosts asking the backend for work: nothing else books them meanwhile. */
  private readonly claiming = new Set<ModelHostWorker>();
  private draining = false;
  private drainAgain = false;
  /** A job's end is being handled (in no request's context, see `dispatch`). */
  private afterJob = false;
  /** Wakes the dispatch when a free host waits only for time (a job turning overdue, or worth a replica). */
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly handlers = new Map<string, JobHandler>();
  private closed = false;
  /** The workers jobs are dispatched to: one per model host. */
  readonly workers: readonly ModelHostWorker[];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    readonly hosts: HostsService,
    @Inject(QUEUE_BACKEND) readonly backend: QueueBackend,
  ) {
    this.registerHandler(
      RUN_TASK_HANDLER,
      function (this: JobContext, task: string, args: Record<string, unknown> = {}) {
        return this.host.client.runTask(task, args);
      },
    );
    this.expiry = new QueueExpiry(
      backend,
      config.queueTimeoutMs,
      (job, waited) => this.left(job, this.expiryError(waited)),
      this.logger,
    );
    const deps = { modes, store: backend.records, idle: () => this.drain() };
    this.workers = hosts.sessions.map((session) => new ModelHostWorker(session, deps));
    for (const worker of this.workers) this.watch(worker.session);
    if (backend.shared) {
      backend.records.events.on((event) => {
        if (event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled') {
          this.endedElsewhere(event.job);
        } else if (event.type === 'queued') {
          // Another gateway's job is this one's to take too, when a host here is free.
          this.drain();
        }
      });
      backend.onCancelRequested?.((id) => {
        const entry = this.runningEntries().find((running) => running.id === id);
        if (entry) this.cancelEntry(entry);
      });
      backend.onWorkWaiting?.(() => this.drain());
    }
  }

  /** A job this engine queued ended on another gateway (a shared queue): its caller here gets the outcome, once. */
  private endedElsewhere(job: JobSnapshot): void {
    const entry = this.entries.get(job.id);
    if (!entry?.queued) return;
    this.entries.delete(job.id);
    entry.queued = false;
    settleFromRecord(entry, job, this.store);
  }

  /** Every job's record and events (the backend's). */
  get store(): JobRecords {
    return this.backend.records;
  }

  /** The jobs running on a host now (a batch counts each member). */
  runningOn(host: string): number {
    for (const [worker, entries] of this.running) if (worker.session.id === host) return entries.length;
    return 0;
  }

  /** The waiting jobs bound to a host (custom jobs that name it). */
  waitingFor(host: string): Awaitable<number> {
    return this.backend.waitingFor(host);
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
  get queueSize(): Awaitable<number> {
    return this.backend.size();
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
  expectedMode(): Awaitable<string | undefined> {
    return drive(this.expectedModeSteps());
  }

  private *expectedModeSteps(): Generator<unknown, string | undefined, unknown> {
    const context = this.planContext();
    const plan = yield* call(this.backend.plan(context));
    for (let i = plan.length - 1; i >= 0; i -= 1) {
      const mode = plan[i]?.mode;
      if (mode !== undefined) return mode;
    }
    return context.activeMode;
  }

  /**
   * Each waiting job's place in the order the scheduler will run them: 1 runs next. With a shared queue the plan is
   * every gateway's waiting jobs, ordered against this gateway's active mode.
   */
  positions(): Awaitable<Map<string, number>> {
    return drive(this.positionsSteps());
  }

  private *positionsSteps(): Generator<unknown, Map<string, number>, unknown> {
    const plan = yield* call(this.backend.plan(this.planContext()));
    return new Map(plan.map((job, index) => [job.id, index + 1]));
  }

  /**
   * Cancels the job with this id (see JobHandle.cancel); false when this engine does not hold it. With a shared
   * queue a job another gateway holds is cancelled there: removed while it waits (its record says `cancelled` once
   * this resolves), else the gateway that runs it is asked to stop it.
   */
  cancelJob(id: string): Awaitable<boolean> {
    const entry = this.localEntry(id);
    if (entry) {
      this.cancelEntry(entry);
      return true;
    }
    if (!this.backend.shared) return false;
    return drive(this.cancelElsewhereSteps(id));
  }

  private localEntry(id: string): Entry | undefined {
    return (
      this.entries.get(id) ??
      this.runningEntries().find((running) => running.id === id) ??
      this.unplaced.find((claimed) => claimed.id === id)
    );
  }

  private *cancelElsewhereSteps(id: string): Generator<unknown, boolean, unknown> {
    const removed = yield* call(this.backend.cancel(id));
    if (removed) {
      this.store.finish(id, {
        state: 'cancelled',
        error: toHttpError(new JobCancelledError('job cancelled while queued')).body,
      });
      return true;
    }
    yield* call(this.backend.requestCancel?.(id));
    return true;
  }

  /** Lets `new CustomJob({ handler: name, args })` run `handler(...args)`: a job that is plain data. */
  registerHandler<T, A extends readonly unknown[]>(name: string, handler: JobHandler<T, A>): void {
    if (this.handlers.has(name)) throw new Error(`a job handler is already registered as '${name}'`);
    this.handlers.set(name, handler as unknown as JobHandler);
  }

  /**
   * Queues a job and returns its handle at once, with a backend that answers at once (the in-memory one, the
   * default); with one that answers asynchronously, use `enqueue`.
   * @throws QueueFullError at once when QUEUE_MAX jobs are already waiting.
   * @throws ModelHostUnavailableError while the model host is down (queued jobs wait for it; new ones are refused).
   * @throws UnknownTaskError for a CustomJob naming a handler nobody registered.
   */
  submitJob(job: GenerationJob): JobHandle<GeneratedImage>;
  submitJob(job: ModeSwitchJob): JobHandle<ModeSwitchResult>;
  submitJob<T, A extends readonly unknown[]>(job: CustomJob<T, A>): JobHandle<T>;
  submitJob(job: Job): JobHandle<unknown> {
    if (!this.backend.answersAtOnce) {
      throw new Error('this queue backend answers asynchronously: submit with `await pool.enqueue(job)`');
    }
    return this.atOnce(this.submit(job), 'submitJob');
  }

  /** submitJob for any backend: the handle once the backend has admitted the job (the same errors, as rejections). */
  enqueue(job: GenerationJob): Promise<JobHandle<GeneratedImage>>;
  enqueue(job: ModeSwitchJob): Promise<JobHandle<ModeSwitchResult>>;
  enqueue<T, A extends readonly unknown[]>(job: CustomJob<T, A>): Promise<JobHandle<T>>;
  async enqueue(job: Job): Promise<JobHandle<unknown>> {
    return this.submit(job);
  }

  /** Not a generator run by `drive`, as the colder paths are: every job passes here, and that costs per job. */
  private submit(job: Job): Awaitable<Entry> {
    if (this.closed) throw new ShuttingDownError('the server takes no new work');
    const down =
      job.kind === 'custom' && job.host !== undefined ? this.boundHostDown(job.host) : this.unavailableReason;
    if (down !== undefined) {
      throw new ModelHostUnavailableError(`the model host went away (${down}); it is being brought back`);
    }
    const queueDown = this.backend.unavailableReason;
    if (queueDown !== undefined) {
      throw new QueueUnavailableError(`${queueDown}; new work is refused until it is back`);
    }
    if (job.kind === 'custom' && typeof job.handler === 'string' && !this.handlers.has(job.handler)) {
      throw new UnknownTaskError(`no job handler is registered as '${job.handler}'`);
    }
    const id = newJobId();
    const entry = new Entry(id, job, job.kind === 'custom' ? this.handlerOf(job) : undefined, this);
    // Filed before the backend has it: a claim answered meanwhile finds its handle (and its function handler).
    this.entries.add(id, entry);
    let admitted: Awaitable<Enqueued>;
    try {
      admitted = this.backend.enqueue({
        id,
        payload: this.localPayload(payloadOf(job)),
        seed: job.kind === 'generation' ? job.params.seed : undefined,
        owner: job.kind === 'generation' ? job.owner : undefined,
        plan: job.kind === 'generation' ? this.planContext() : undefined,
      });
    } catch (error) {
      this.entries.delete(id);
      throw error;
    }
    if (!isPromise(admitted)) return this.admitted(entry, admitted);
    return admitted.then(
      (answer) => this.admitted(entry, answer),
      (error: unknown) => {
        this.entries.delete(id);
        throw error;
      },
    );
  }

  private admitted(entry: Entry, admitted: Enqueued): Entry {
    entry.ahead = admitted.ahead;
    for (const worker of this.workers) if (worker.busy) entry.ahead += 1;
    this.expiry.admitted(admitted.job.submittedAt);
    this.drain();
    return entry;
  }

  /**
   * With a shared queue, a custom job that carries a function runs only here: it is bound to one of this gateway's
   * hosts (one that serves), so no other gateway takes it.
   */
  private localPayload(payload: JobPayload): JobPayload {
    if (!this.backend.shared || payload.kind !== 'custom' || payload.handler !== null || payload.host) {
      return payload;
    }
    const host = (this.workers.find((worker) => worker.connection.accepting) ?? this.workers[0])?.session.id;
    return { ...payload, host };
  }

  /** Takes no new work and answers every queued job 503 "shutting down", at once; running jobs go on. */
  beginShutdown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const worker of this.workers) worker.connection.close();
    clearTimeout(this.wakeTimer);
    this.expiry.stop();
    const answered = drive(this.closeSteps());
    if (isPromise(answered)) answered.catch((error: unknown) => this.logger.error(`shutting down: ${String(error)}`));
  }

  private *closeSteps(): Generator<unknown, void, unknown> {
    const gone = new ShuttingDownError('the server stopped before this job started');
    let count = 0;
    for (const entry of this.unplaced.splice(0)) {
      entry.reject(gone);
      count += 1;
    }
    const queued = yield* call(this.backend.close());
    for (const job of queued) {
      this.left(job, gone);
      count += 1;
    }
    for (const entry of this.retries.splice(0)) {
      entry.reject(new ShuttingDownError('the server stopped before this job could run again'));
    }
    this.logger.log(
      `shutting down: new work and ${count} queued job(s) answered 503` +
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
    const failed = (error: unknown): void =>
      this.logger.warn(`could not queue the default mode's load: ${(error as Error).message}`);
    try {
      const queued = this.submit(new ModeSwitchJob(mode));
      if (isPromise(queued)) queued.catch(failed);
    } catch (error) {
      failed(error);
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
        else this.logger.error(`${this.queuedForLog()} queued job(s) wait for the model host (${reason})`);
      }
      if (state !== 'serving') return;
      if (wasLost) {
        this.logger.log(
          `model host ${session.id} back: registry re-synced, mode '${session.registry.currentMode ?? '(none)'}' ` +
            `active; resuming ${this.queuedForLog()} queued job(s)`,
        );
      }
      wasLost = false;
      this.drain();
    });
  }

  /** The queue's size for a log line: "?" from a backend that answers asynchronously. */
  private queuedForLog(): number | string {
    const size = this.backend.size();
    if (!isPromise(size)) return size;
    size.catch(ignore);
    return '?';
  }

  /** A backend's answer where the caller needs it now (the in-memory backend answers at once). */
  private atOnce<T>(answer: Awaitable<T>, what: string): T {
    if (isPromise(answer)) {
      answer.catch(ignore);
      throw new Error(`${what}: this queue backend answers asynchronously`);
    }
    return answer;
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
    const claimed = retry === -1 ? this.unplaced.indexOf(entry) : -1;
    if (retry !== -1) {
      this.retries.splice(retry, 1);
      entry.abort();
      entry.reject(new JobCancelledError('job cancelled while it waited to run again'));
    } else if (claimed !== -1) {
      this.unplaced.splice(claimed, 1);
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else if (entry.queued) {
      const done = drive(this.cancelSteps(entry));
      if (isPromise(done)) done.catch((error: unknown) => this.logger.error(`cancel: ${String(error)}`));
    } else if (this.runningEntries().includes(entry)) {
      entry.abort();
    }
  }

  private *cancelSteps(entry: Entry): Generator<unknown, void, unknown> {
    const removed = yield* call(this.backend.cancel(entry.id));
    if (removed) {
      this.entries.delete(entry.id);
      entry.queued = false;
      entry.reject(new JobCancelledError('job cancelled while queued'));
    } else {
      // Claimed meanwhile: it starts with its signal aborted (a generation stops at its first step); with a shared
      // queue another gateway may have claimed it, and is asked to stop it.
      entry.abort();
      if (this.entries.has(entry.id)) yield* call(this.backend.requestCancel?.(entry.id));
    }
  }

  /** A waiting job left the queue without running (expired, or the gateway stops): its handle or record says so. */
  private left(job: QueuedJob, error: Error): void {
    const entry = this.entries.take(job.id);
    if (entry) {
      entry.queued = false;
      entry.reject(error);
    } else {
      this.store.finish(job.id, { state: 'failed', error: toHttpError(error).body });
    }
  }

  /** QUEUE_TIMEOUT_MS passed before the job's turn came: why, as its caller is told. */
  private expiryError(waited: number): Error {
    const down = this.unavailableReason;
    const loading = this.workers.find((worker) => worker.switching !== undefined)?.switching;
    if (down !== undefined) {
      return new ModelHostUnavailableError(
        `the model host went away (${down}); gave up after waiting ${waited} ms (QUEUE_TIMEOUT_MS)`,
      );
    }
    if (loading !== undefined) {
      return new ModeSwitchTimeoutError(
        loading,
        `waited ${waited} ms in the queue while mode '${loading}' was loading (QUEUE_TIMEOUT_MS)`,
      );
    }
    return new QueueTimeoutError(waited);
  }

  /** Starts a drain, or asks the running one for another pass: one drain at a time. */
  private drain(): void {
    if (this.closed) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    // Every host busy and no job waiting for one: nothing to hand out (a submit behind a running job ends here).
    if (this.retries.length === 0 && this.unplaced.length === 0 && !this.workers.some(this.isFreeWorker)) return;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.draining = true;
    let done: Awaitable<void>;
    try {
      done = drive(this.drainSteps());
    } catch (error) {
      this.drained();
      throw error;
    }
    if (isPromise(done)) {
      done.then(this.drained, (error: unknown) => {
        this.logger.error(`dispatch: ${String(error)}`);
        this.drained();
      });
    } else {
      this.drained();
    }
  }

  private readonly drained = (): void => {
    this.draining = false;
    if (!this.drainAgain) return;
    this.drainAgain = false;
    this.drain();
  };

  /**
   * Hands work to the free hosts: first the jobs that wait for a host (generations that died with another, claims
   * left without one), then, while any host is free, each free host what the scheduler chooses for it without a
   * load (its active mode, or one it holds), then a job that needs a load, to the free host where that costs least.
   * A free host that is left only jobs better left to a busy host waits; a timer wakes it when one turns overdue or
   * has waited past SCHEDULER_REPLICA_AFTER_MS.
   */
  private *drainSteps(): Generator<unknown, void, unknown> {
    for (;;) {
      if (this.closed) return;
      this.drainAgain = false;
      this.dispatchWaitingForHost();
      // Asked before the list is made: a drain ends here after each placement, when no host is left free.
      if (!this.workers.some(this.isFreeWorker)) return;
      const free = this.freeWorkers();
      const now = Date.now();
      const avoid = this.workers.length < 2 ? NO_MODES : yield* this.avoidedModes(now);
      let placed = false;
      for (const worker of free) {
        if (!this.isFree(worker)) continue;
        const taken = yield* call(this.claimFor(worker, now, avoid, true));
        if (taken.length > 0) {
          this.place(worker, taken);
          placed = true;
        }
      }
      if (placed) continue;
      for (const worker of free) {
        if (!this.isFree(worker)) continue;
        const taken = yield* call(this.claimFor(worker, now, avoid, false));
        const first = taken[0];
        if (!first) continue;
        const hosts = this.freeWorkers();
        const target = first.mode === undefined || hosts.length === 0 ? worker : cheapestHostFor(first.mode, hosts);
        this.place(target, taken);
        placed = true;
        break;
      }
      if (placed || this.drainAgain) continue;
      yield* this.wakeAt(now, free, avoid);
      return;
    }
  }

  private isFree(worker: ModelHostWorker): boolean {
    return worker.available && !this.claiming.has(worker);
  }

  private readonly isFreeWorker = (worker: ModelHostWorker): boolean => this.isFree(worker);

  private freeWorkers(): ModelHostWorker[] {
    return this.workers.filter((worker) => this.isFree(worker));
  }

  /**
   * Asks the backend for `worker`'s work; while an asynchronous answer is on its way the worker is reserved, so
   * nothing books it twice (a plain answer leaves no gap to reserve it for).
   */
  private claimFor(
    worker: ModelHostWorker,
    now: number,
    avoid: ReadonlySet<string>,
    withoutLoad: boolean,
  ): Awaitable<readonly QueuedJob[]> {
    const context = claimContext(worker, now, avoid);
    const options = { onlyIfHeld: withoutLoad ? worker.heldModes() : undefined, maxBatch: this.config.maxBatch };
    const answer = this.backend.claim(context, options);
    if (!isPromise(answer)) return answer;
    this.claiming.add(worker);
    return answer.finally(() => this.claiming.delete(worker));
  }

  /** Runs claimed jobs on `worker`, or keeps them for the next free host when it can no longer take them. */
  private place(worker: ModelHostWorker, taken: readonly QueuedJob[]): void {
    const [only] = taken;
    if (!only) return;
    if (taken.length === 1 && worker.available) {
      this.dispatch(worker, this.entryOf(only));
      return;
    }
    const entries = taken.map((job) => this.entryOf(job));
    if (!worker.available) this.unplaced.push(...entries);
    else this.dispatchBatch(worker, entries);
  }

  /** The handle of a claimed job: this engine's own, or one made from its data (a job another gateway queued). */
  private entryOf(job: QueuedJob): Entry {
    const own = this.entries.take(job.id);
    if (own) {
      own.queued = false;
      return own;
    }
    const made = jobOf(job.payload);
    const entry = new Entry(job.id, made, made.kind === 'custom' ? this.handlerOf(made) : undefined, this);
    entry.queued = false;
    return entry;
  }

  /**
   * Modes active on a busy host whose oldest waiting job has waited less than SCHEDULER_REPLICA_AFTER_MS: a free
   * host leaves them to that host rather than load a second copy. Past it, a free host loads the mode too.
   */
  private *avoidedModes(now: number): Generator<unknown, ReadonlySet<string>, unknown> {
    const avoid = new Set<string>();
    for (const worker of this.workers) {
      const mode = worker.activeMode;
      if (!worker.busy || mode === undefined) continue;
      const oldest = yield* call(this.backend.oldestOf(mode));
      if (oldest && now - oldest.submittedAt < this.config.replicaAfterMs) avoid.add(mode);
    }
    return avoid;
  }

  /** A free host waits on jobs better left to a busy one: wake the dispatch when that changes by time alone. */
  private *wakeAt(
    now: number,
    free: readonly ModelHostWorker[],
    avoid: ReadonlySet<string>,
  ): Generator<unknown, void, unknown> {
    if ((yield* call(this.backend.size())) === 0) return;
    const deadlines: number[] = [];
    for (const worker of free) {
      const deadline = yield* call(this.backend.nextDeadline(claimContext(worker, now, avoid)));
      if (deadline !== undefined) deadlines.push(deadline);
    }
    for (const mode of avoid) {
      const oldest = yield* call(this.backend.oldestOf(mode));
      if (oldest) deadlines.push(oldest.submittedAt + this.config.replicaAfterMs - now);
    }
    if (deadlines.length === 0 || this.closed) return;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.drain(), Math.max(1, Math.min(...deadlines)));
    this.wakeTimer.unref();
  }

  /**
   * Jobs that wait for a host, oldest first, each on a free host that serves: generations whose host died under
   * them run once more; jobs claimed for a host that went away start.
   */
  private dispatchWaitingForHost(): void {
    this.dispatchEach(this.retries, false);
    this.dispatchEach(this.unplaced, true);
  }

  private dispatchEach(queue: Entry[], fresh: boolean): void {
    while (queue.length > 0) {
      const entry = queue[0];
      if (!entry) return;
      const free = this.freeWorkers();
      if (free.length === 0) return;
      queue.shift();
      const worker = entry.mode === undefined ? free[0] : cheapestHostFor(entry.mode, free);
      if (!worker) return;
      if (!fresh) {
        this.store.moved(entry.id, worker.session.id);
        this.logger.warn(`job ${entry.id} runs again on model host ${worker.session.id} (its host died under it)`);
      }
      this.dispatch(worker, entry, fresh);
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

  /** Each member keeps its own record, events, progress, cancel and result; the worker is free once all ended. */
  private dispatchBatch(worker: ModelHostWorker, entries: Entry[]): void {
    for (const entry of entries) this.store.started(entry.id, worker.session.id);
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

  private runningEntries(): Entry[] {
    return [...this.running.values(), this.retries].flat();
  }

  /** `fresh`: the job starts now (false: a retry, already running). */
  private dispatch(worker: ModelHostWorker, entry: Entry, fresh = true): void {
    if (fresh) this.store.started(entry.id, worker.session.id);
    this.running.set(worker, [entry]);
    // Not in the context of the request that happened to free the worker (logging/outside-request.ts). A job's end
    // is outside every request already (its reactions were set up there): no context to leave, for each job run
    // back to back.
    if (this.afterJob) this.runOn(worker, entry);
    else outsideRequest(() => this.runOn(worker, entry));
  }

  private runOn(worker: ModelHostWorker, entry: Entry): void {
    const ended = (): void => {
      this.running.delete(worker);
      this.afterJob = true;
      try {
        this.drain();
      } finally {
        this.afterJob = false;
      }
    };
    void worker.run(entry).then(
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
