import type { ErrorBody } from '../errors/http-error.table.js';
import type { ImageLookup, JobListQuery } from './job.store.js';
import type { JobEvents } from './job.events.js';
import type { JobImage, JobKind, JobRecord, JobSnapshot, JobSwitch } from './job-record.types.js';
import type { GenerationParams } from './job.types.js';
import type { SchedulableJob, SchedulingContext } from './scheduler.js';

/** The Nest token of the engine's QueueBackend (QueueModule provides the in-memory one). */
export const QUEUE_BACKEND = Symbol('QUEUE_BACKEND');

/**
 * A backend's answer: a Promise from one that asks another process (Redis), the value itself from one that
 * answers at once (in memory). The engine treats every answer as possibly a Promise (see `drive`), so one code
 * path serves both, and an in-memory answer costs no microtask.
 */
export type Awaitable<T> = T | Promise<T>;

/*
 * A job's payload as the backend carries it: plain data (JSON-like), never a function. GenerationJob, ModeSwitchJob
 * and a CustomJob naming a registered handler are already this shape. A CustomJob that carries a function stays in
 * the process that submitted it (the engine keeps it in its own map, by id): its payload says `handler: null`, and
 * only that process can run it.
 */
export interface GenerationPayload {
  readonly kind: 'generation';
  readonly mode: string;
  readonly params: GenerationParams;
}

export interface ModeSwitchPayload {
  readonly kind: 'mode-switch';
  readonly mode: string;
}

export interface CustomPayload {
  readonly kind: 'custom';
  /** The registered handler's name; null: a function, kept by the engine that submitted it (in-process only). */
  readonly handler: string | null;
  /** The handler's arguments (empty for a function handler: they stay in-process with it). */
  readonly args: readonly unknown[];
  /** The model host it must run on; undefined: any. */
  readonly host: string | undefined;
}

export type JobPayload = GenerationPayload | ModeSwitchPayload | CustomPayload;

/** A waiting job as the backend holds it: what the scheduler orders, and the payload a worker runs. */
export interface QueuedJob extends SchedulableJob {
  readonly payload: JobPayload;
}

/** What `enqueue` is given: the engine chooses the id (a function handler is filed under it before the job waits). */
export interface EnqueueRequest {
  readonly id: string;
  readonly payload: JobPayload;
  /** A generation's seed, for its record. */
  readonly seed: number | undefined;
  /** Who queued it, for its record (auth/caller.ts); undefined: the server itself. */
  readonly owner?: string;
  /**
   * What a generation's place in the plan (`ahead`) is counted against: the engine's active mode. Any other job is
   * a barrier, behind every waiting one, so the engine gives none.
   */
  readonly plan: SchedulingContext | undefined;
}

export interface Enqueued {
  readonly job: QueuedJob;
  /** The waiting jobs the plan runs before it (the running ones are the engine's to add). */
  readonly ahead: number;
}

/** The state of a free model host that asks for work (see SchedulingContext): `host` is required here. */
export interface ClaimContext extends SchedulingContext {
  readonly host: string;
}

export interface ClaimOptions {
  /**
   * Take the job only if it needs no load on this host: a custom job, or one whose mode is in this set (its active
   * mode and the modes on its device). Otherwise nothing is taken; the engine places such a job on the free host
   * where its load costs least. Undefined: take whatever the scheduler chooses.
   */
  readonly onlyIfHeld?: ReadonlySet<string>;
  /** Up to this many compatible generations in one call (MAX_BATCH, see batchPartners); 1: no batch. */
  readonly maxBatch: number;
}

/**
 * Every job's record and every change to it as a JobEvent (the JobStore in memory; hashes and a stream in Redis).
 * Writes are told, not awaited: a shared backend applies them in order. Reads are the gateway's own view.
 */
export interface JobRecords {
  readonly events: JobEvents;
  create(kind: JobKind, mode: string | undefined, seed: number | undefined, id?: string, owner?: string): JobSnapshot;
  started(id: string, host: string): void;
  moved(id: string, host: string): void;
  switching(id: string, from: string | undefined, to: string): void;
  switched(id: string, change: JobSwitch, ms: number): void;
  progress(id: string, step: number, totalSteps: number): void;
  finish(
    id: string,
    outcome:
      | { readonly state: 'completed'; readonly generateMs?: number | undefined; readonly image?: JobImage | undefined }
      | { readonly state: 'failed' | 'cancelled'; readonly error: ErrorBody },
  ): void;
  get(id: string): JobRecord | undefined;
  snapshot(id: string): JobSnapshot | undefined;
  list(query: JobListQuery): JobSnapshot[];
  /** A shared backend may read the image from another process (a Promise). */
  image(id: string): Awaitable<ImageLookup>;
}

/**
 * The queue behind the job engine (WorkerPool): where waiting jobs are admitted, ordered, claimed, cancelled and
 * expired, and where every job's record lives. The engine keeps what cannot leave its process: handles (promises,
 * cancel, abort), function handlers, what runs on its own hosts, retries, batching's dispatch, shutdown.
 *
 * Each method is one atomic step (in Redis: one script or transaction): a job is claimed by at most one host, a
 * cancel or expiry removes it only while it waits, admission and QUEUE_MAX are checked with the insert. Every
 * payload is plain data. `queueBackendContract` (queue-backend.contract.ts) is what every backend must pass.
 */
export interface QueueBackend {
  /** True when every answer is a plain value, never a Promise (in memory): `pool.submitJob` needs it. */
  readonly answersAtOnce: boolean;
  readonly records: JobRecords;
  /**
   * Admits a job: creates its record (`queued`) and makes it wait, in one step.
   * @throws QueueFullError when QUEUE_MAX jobs already wait (the running ones not counted).
   */
  enqueue(request: EnqueueRequest): Awaitable<Enqueued>;
  /**
   * Takes the job the scheduler chooses for this host (with its batch partners: same mode and settings, next in the
   * plan, up to `maxBatch`) off the queue: [] when none is this host's to take. Jobs bound to another host, and
   * passed-over barriers, are never taken. The jobs' records are not touched (the engine says `started`).
   */
  claim(context: ClaimContext, options: ClaimOptions): Awaitable<readonly QueuedJob[]>;
  /** Removes a waiting job (cancelled): the job, or undefined when it no longer waits. */
  cancel(id: string): Awaitable<QueuedJob | undefined>;
  /** Removes and returns every waiting job whose QUEUE_TIMEOUT_MS has passed at `now`, oldest first. */
  expire(now: number): Awaitable<readonly QueuedJob[]>;
  /** When the oldest waiting job's QUEUE_TIMEOUT_MS runs out (ms since the epoch); undefined when none waits. */
  nextExpiry(): Awaitable<number | undefined>;
  /** The waiting jobs in the order they would run from `context` (positions, "will switch after N pending jobs"). */
  plan(context: SchedulingContext): Awaitable<readonly QueuedJob[]>;
  /** Jobs waiting: the figure QUEUE_MAX bounds. */
  size(): Awaitable<number>;
  /** Waiting jobs bound to `host`. */
  waitingFor(host: string): Awaitable<number>;
  /** ms until the choice for `context` could change by time alone (a job turning overdue); undefined: never. */
  nextDeadline(context: ClaimContext): Awaitable<number | undefined>;
  /** The oldest waiting generation of `mode` (replicas: how long its jobs have waited), undefined when none. */
  oldestOf(mode: string): Awaitable<QueuedJob | undefined>;
  /**
   * True when other gateways take jobs from this queue too (Redis): the engine then answers for jobs that end
   * elsewhere, cancels across gateways and keeps function-handler jobs on its own hosts. Undefined: false.
   */
  readonly shared?: boolean;
  /** A shared backend's reason why new work cannot be queued now (its store is unreachable); undefined: it can. */
  readonly unavailableReason?: string | undefined;
  /** A shared backend: asks the gateway that runs job `id` to stop it (a cancel made on another gateway). */
  requestCancel?(id: string): Awaitable<void>;
  /** A shared backend: `listener` is told the id of each job some gateway asked to stop (see requestCancel). */
  onCancelRequested?(listener: (id: string) => void): void;
  /** A shared backend: `listener` is told when work may wait that another gateway queued or gave back. */
  onWorkWaiting?(listener: () => void): void;
  /**
   * A shared backend: what this gateway says of its model hosts (status' `hosts` entries, plain JSON), kept for
   * `ttlMs`: the other gateways list them too.
   */
  shareHosts?(gateway: string, hosts: readonly object[], ttlMs: number): Awaitable<void>;
  /** A shared backend: the model hosts every other gateway said it has (and has not let lapse). */
  sharedHosts?(except: string): Awaitable<readonly object[]>;
  /**
   * This gateway stops: removes and returns the waiting jobs that cannot outlive it, for the engine to answer
   * (in memory: every one; a shared backend: those this gateway queued, whose callers are connected to it).
   */
  close(): Awaitable<readonly QueuedJob[]>;
}

/**
 * An asynchronous backend answers with native Promises (what async functions and ioredis give): `instanceof` is a
 * check the engine makes on every answer, where looking up `then` on each plain answer cost it measurably.
 */
export function isPromise<T>(value: Awaitable<T>): value is Promise<T> {
  return value instanceof Promise;
}

/** `yield* call(x)` inside a generator run by `drive`: x's value, at once when it is not a Promise. */
export function* call<T>(value: Awaitable<T>): Generator<Awaitable<T>, T, unknown> {
  return (yield value) as T;
}

/**
 * Runs a generator whose `yield`s are backend answers: synchronously for as long as they are plain values (the
 * in-memory backend), resuming after each Promise otherwise. The result is a plain value when nothing was awaited.
 */
export function drive<R>(steps: Generator<unknown, R, unknown>): Awaitable<R> {
  return resume(steps, undefined, false);
}

function resume<R>(steps: Generator<unknown, R, unknown>, input: unknown, failed: boolean): Awaitable<R> {
  for (;;) {
    const step = failed ? steps.throw(input) : steps.next(input);
    if (step.done) return step.value;
    const value = step.value;
    if (isPromise(value)) {
      return value.then(
        (answer) => resume(steps, answer, false),
        (error: unknown) => resume(steps, error, true),
      );
    }
    input = value;
    failed = false;
  }
}
