import { randomUUID } from 'node:crypto';

import { Logger } from '@nestjs/common';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';

import { ModelHostUnavailableError, QueueFullError, QueueUnavailableError } from '../errors/domain.errors.js';
import { toHttpError, type ErrorBody } from '../errors/http-error.table.js';
import { batchPartners } from './batching.js';
import { FifoScheduler } from './fifo.scheduler.js';
import type { JobState } from './job-record.types.js';
import { ModeAwareScheduler } from './mode-aware.scheduler.js';
import { RETRY_AFTER_SECONDS, type MemoryQueueOptions } from './memory-queue.backend.js';
import type { RedisJobRecords } from './redis-job.records.js';
import type { ClaimContext, ClaimOptions, Enqueued, EnqueueRequest, QueueBackend, QueuedJob } from './queue-backend.js';
import type { Scheduler, SchedulingContext } from './scheduler.js';

const NOTHING: readonly QueuedJob[] = Object.freeze([]);
/** How often an idle gateway looks for work it was not told of. */
const WORK_POLL_MS = 1_000;
/** The claim lock outlives no step: one that held it and died frees it after this. */
const MUTEX_MS = 10_000;
/** BullMQ's queue of the jobs that wait for no mode: switches and custom jobs (barriers). */
const BARRIER_QUEUE = 'barriers';

export interface RedisQueueOptions extends MemoryQueueOptions {
  /** REDIS_URL. */
  readonly url: string;
  /** Every key starts with it (BullMQ's prefix too): the gateways of one queue share it. */
  readonly prefix: string;
  /**
   * How long a claimed job's lock lasts without renewal (renewed every half of it while the job runs): a gateway
   * that dies loses its jobs to another after at most this plus the stalled check's interval.
   */
  readonly lockMs: number;
  /** Times a job may lose its lock (its gateway died) and be run again before it fails. */
  readonly maxStalledCount: number;
}

interface Held {
  readonly job: Job<QueuedJob>;
  readonly token: string;
}

interface Lane {
  readonly queue: Queue<QueuedJob>;
  readonly worker: Worker<QueuedJob>;
}

/** The connection settings of this backend's own commands: fail at once while Redis is away (503, not a hang). */
export function commandConnection(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  // Its state says when Redis is away (unavailableReason); ioredis reconnects by itself.
  redis.on('error', () => undefined);
  return redis;
}

/**
 * The queue shared by every gateway of one Redis (QUEUE_BACKEND=redis), over BullMQ. One BullMQ queue per mode holds
 * its generations, one more the barriers (switches, custom jobs); each waiting job is also a field of one hash
 * (`<prefix>:q:waiting`, the QueuedJob as JSON), the index every choice is made over. A step that changes what
 * waits (enqueue, claim, cancel, expire) holds one Redis lock (`<prefix>:q:lock`, SET NX PX) for its few commands,
 * so the index and BullMQ agree: a claim reads the index, lets the same Scheduler as the in-memory backend choose
 * (mode-aware, SCHEDULER_MAX_DELAY_MS, FIFO at 0), and takes the chosen job with BullMQ's manual fetch
 * (`Worker.getNextJob`) from the head of its mode's queue; within a mode jobs run in order, so the head is the
 * chosen job. A job that BullMQ's stalled check put back (its gateway died holding it) is at its queue's head and
 * not in the index: the claim that meets it there takes it, and the check's own gateway puts it back in the index.
 *
 * A claimed job holds BullMQ's lock, renewed every lockMs/2 (extendLock) until its record finishes here; then it
 * moves to completed or failed and is removed (the record and the image say the outcome, redis-job.records.ts).
 * Every gateway runs BullMQ's stalled check on every queue (`startStalledCheckTimer`): a lock that lapsed puts its
 * job back to wait, up to maxStalledCount times.
 *
 * One file for one concern, the queue's state in Redis: every step takes the same lock and keeps the same index and
 * BullMQ queues in agreement, so they are read together (the records and their events: redis-job.records.ts).
 */
export class RedisQueueBackend implements QueueBackend {
  readonly answersAtOnce = false;
  readonly shared = true;
  private readonly logger = new Logger(RedisQueueBackend.name);
  /** Workers' connection: BullMQ wants one that retries for ever (maxRetriesPerRequest: null). */
  private readonly bull: Redis;
  private readonly lanes = new Map<string, Lane>();
  /** Jobs claimed here and not yet finished, by id: their locks are renewed. */
  private readonly held = new Map<string, Held>();
  /**
   * Jobs queued here that may still wait: this gateway answers them when it stops (a caller here waits for them;
   * a function handler runs only here). One leaves the set when any gateway starts or ends it.
   */
  private readonly ownJobs = new Set<string>();
  /** One step of this gateway at a time asks for the Redis lock (the others wait here, not spinning on Redis). */
  private localTurn: Promise<unknown> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** Told across gateways (pub/sub on `<prefix>:q:notify`): `work` (a job waits again), `cancel <id>`. */
  private readonly subscriber: Redis;
  private readonly cancelListeners: ((id: string) => void)[] = [];
  private readonly workListeners: (() => void)[] = [];

  constructor(
    private readonly options: RedisQueueOptions,
    readonly records: RedisJobRecords,
    private readonly redis: Redis,
  ) {
    this.bull = new Redis(options.url, { maxRetriesPerRequest: null });
    this.bull.on('error', () => undefined);
    records.onFinish = (id, state, error) => this.release(id, state, error);
    records.events.on((event) => {
      if (event.type !== 'queued' && event.type !== 'progress') this.ownJobs.delete(event.job.id);
    });
    let away = false;
    redis.on('close', () => {
      if (away || this.closed) return;
      away = true;
      this.logger.error(`Redis at ${this.where()} went away: new work is refused (503) until it is back`);
    });
    redis.on('ready', () => {
      if (!away) return;
      away = false;
      this.logger.log(`Redis at ${this.where()} is back: the queue takes work again`);
      this.wake();
    });
    this.subscriber = new Redis(options.url, { maxRetriesPerRequest: null });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, message: string) => this.told(message));
    void this.subscriber.subscribe(this.key('notify')).catch(() => undefined);
    // Another gateway's new job reaches this one as its record's `queued` event; this poll is the net under that
    // (events lost while Redis was away, jobs back from a stall whose notice was missed).
    const poll = setInterval(() => this.wake(), WORK_POLL_MS);
    poll.unref();
    this.timers.push(poll);
    const renew = setInterval(() => this.renewLocks(), Math.max(100, Math.floor(options.lockMs / 2)));
    const discover = setInterval(() => void this.openKnownLanes(), Math.max(200, options.lockMs));
    renew.unref();
    discover.unref();
    this.timers.push(renew, discover);
  }

  /** Why new work cannot be queued now (Redis away); undefined when it can. */
  get unavailableReason(): string | undefined {
    return this.redis.status === 'ready'
      ? undefined
      : `Redis at ${this.where()} cannot be reached (${this.redis.status})`;
  }

  requestCancel(id: string): Promise<void> {
    return this.ask(async () => {
      await this.redis.publish(this.key('notify'), `cancel ${id}`);
    });
  }

  async shareHosts(gateway: string, hosts: readonly object[], ttlMs: number): Promise<void> {
    await this.ask(() =>
      this.redis
        .multi()
        .set(this.key(`hosts:${gateway}`), JSON.stringify(hosts), 'PX', ttlMs)
        .sadd(this.key('gateways'), gateway)
        .exec(),
    );
  }

  async sharedHosts(except: string): Promise<readonly object[]> {
    const gateways = (await this.ask(() => this.redis.smembers(this.key('gateways')))).filter((g) => g !== except);
    if (gateways.length === 0) return [];
    const said = await this.ask(() => this.redis.mget(gateways.map((gateway) => this.key(`hosts:${gateway}`))));
    const gone = gateways.filter((_, i) => said[i] === null);
    // A gateway that stopped saying (it stopped, or died) leaves the list.
    if (gone.length > 0) void this.redis.srem(this.key('gateways'), ...gone).catch(() => undefined);
    return said.flatMap((hosts) => (hosts === null ? [] : (JSON.parse(hosts) as object[])));
  }

  onCancelRequested(listener: (id: string) => void): void {
    this.cancelListeners.push(listener);
  }

  onWorkWaiting(listener: () => void): void {
    this.workListeners.push(listener);
  }

  private told(message: string): void {
    if (message === 'work') this.wake();
    else if (message.startsWith('cancel ')) for (const listener of this.cancelListeners) listener(message.slice(7));
  }

  private wake(): void {
    if (this.closed) return;
    for (const listener of this.workListeners) listener();
  }

  /** Loads the records and opens the queues other gateways made (their stalled jobs are this one's to check). */
  async start(): Promise<void> {
    await this.records.start();
    await this.openKnownLanes();
  }

  /**
   * `start`, tried again every second while Redis cannot be reached (the gateway serves meanwhile, refusing new
   * work 503), and a warning when Redis may evict keys: BullMQ's jobs and locks must never be evicted.
   */
  async startWhenReachable(): Promise<void> {
    for (let said = false; !this.closed; said = true) {
      try {
        await this.start();
        break;
      } catch (error) {
        if (!said) this.logger.warn(`${this.unavailable(error).message}: the queue starts once it is`);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    if (this.closed) return;
    this.logger.log(
      `queue on Redis at ${this.where()} (prefix '${this.options.prefix}'), shared with every gateway there`,
    );
    const policy = /maxmemory_policy:(\S+)/.exec(await this.redis.info('memory').catch(() => ''))?.[1];
    if (policy !== undefined && policy !== 'noeviction') {
      this.logger.warn(
        `Redis at ${this.where()} has maxmemory-policy ${policy}: set maxmemory-policy noeviction ` +
          '(redis.conf, or CONFIG SET maxmemory-policy noeviction), or Redis may evict queued jobs and their locks',
      );
    }
  }

  /** Nest: after every module's onModuleDestroy (the engine's running jobs have ended). */
  onApplicationShutdown(): Promise<void> {
    return this.dispose();
  }

  private key(what: string): string {
    return `${this.options.prefix}:q:${what}`;
  }

  private where(): string {
    const url = new URL(this.options.url);
    return `${url.hostname}:${url.port || '6379'}`;
  }

  async enqueue({ id, payload, seed, owner, plan }: EnqueueRequest): Promise<Enqueued> {
    return this.locked(async () => {
      const waitingNow = await this.redis.hlen(this.key('waiting'));
      if (waitingNow >= this.options.queueMax) throw new QueueFullError(this.options.queueMax, RETRY_AFTER_SECONDS);
      const seq = await this.redis.incr(this.key('seq'));
      const mode = payload.kind === 'custom' ? undefined : payload.mode;
      const { created_ms: submittedAt } = this.records.create(payload.kind, mode, seed, id, owner);
      const job: QueuedJob = {
        id,
        kind: payload.kind,
        mode,
        seq,
        submittedAt,
        host: payload.kind === 'custom' ? payload.host : undefined,
        payload,
      };
      try {
        await this.lane(laneOf(job)).queue.add(job.kind, job, {
          jobId: id,
          removeOnComplete: true,
          removeOnFail: true,
        });
        await this.redis.hset(this.key('waiting'), id, JSON.stringify(job));
      } catch (error) {
        this.records.finish(id, { state: 'failed', error: unavailableBody(this.unavailable(error)) });
        throw this.unavailable(error);
      }
      this.ownJobs.add(id);
      if (job.kind !== 'generation' || !plan) return { job, ahead: waitingNow };
      const order = this.schedulerOf(await this.waiting()).plan(plan);
      return { job, ahead: order.findIndex((waiting) => waiting.id === id) };
    });
  }

  async claim(context: ClaimContext, { onlyIfHeld, maxBatch }: ClaimOptions): Promise<readonly QueuedJob[]> {
    return this.locked(async () => {
      // A job the index names but BullMQ no longer holds is dropped from the index, and the choice made again.
      for (let tries = 0; tries < 8; tries += 1) {
        const waiting = await this.waiting();
        const scheduler = this.schedulerOf(waiting);
        const chosen = scheduler.peek(context) as QueuedJob | undefined;
        if (!chosen) return NOTHING;
        if (onlyIfHeld && chosen.mode !== undefined && !onlyIfHeld.has(chosen.mode)) return NOTHING;
        const first = await this.fetch(chosen, context.host);
        if (first === 'none') return NOTHING;
        if (!first) continue;
        const taken = [first];
        if (first.id === chosen.id && chosen.kind === 'generation' && maxBatch > 1) {
          scheduler.remove(chosen.id);
          const byId = new Map(waiting.map((job) => [job.id, job]));
          const order = scheduler.plan({ activeMode: chosen.mode, now: context.now });
          for (const id of batchPartners(chosen.payload, order, (partner) => byId.get(partner)?.payload, maxBatch)) {
            const partner = byId.get(id);
            const got = partner && (await this.fetch(partner, context.host, true));
            if (!got || got === 'none') break;
            taken.push(got);
          }
        }
        return taken;
      }
      return NOTHING;
    });
  }

  /**
   * Takes `job` from the head of its BullMQ queue (with its lock) and out of the index. The head is another job
   * only when BullMQ's stalled check put that one back: it is taken instead (it was running; it goes first).
   * Undefined when the queue is empty (the index was stale), or, with `exact`, when the head is not `job`.
   */
  private async fetch(job: QueuedJob, host: string, exact = false): Promise<QueuedJob | 'none' | undefined> {
    const { worker } = this.lane(laneOf(job));
    const token = randomUUID();
    const got = await worker.getNextJob(token, { block: false });
    if (!got?.id) {
      await this.redis.hdel(this.key('waiting'), job.id);
      return undefined;
    }
    // Another job than the one chosen (one back from a stall) that is not this host's: it stays at the head.
    const otherHost = got.data.host !== undefined && got.data.host !== host;
    if (got.id !== job.id && (exact || otherHost)) {
      await got.moveToWait(token);
      return exact ? undefined : 'none';
    }
    this.held.set(got.id, { job: got, token });
    await this.redis.hdel(this.key('waiting'), got.id);
    return got.data;
  }

  async cancel(id: string): Promise<QueuedJob | undefined> {
    return this.locked(async () => {
      const raw = await this.redis.hget(this.key('waiting'), id);
      if (raw === null) return undefined;
      const job = JSON.parse(raw) as QueuedJob;
      const removed = await this.lane(laneOf(job)).queue.remove(id);
      await this.redis.hdel(this.key('waiting'), id);
      this.ownJobs.delete(id);
      return removed === 1 ? job : undefined;
    });
  }

  async expire(now: number): Promise<readonly QueuedJob[]> {
    return this.locked(async () => {
      const due = (await this.waiting()).filter((job) => job.submittedAt + this.options.queueTimeoutMs <= now);
      const expired: QueuedJob[] = [];
      for (const job of due) {
        const removed = await this.lane(laneOf(job)).queue.remove(job.id);
        await this.redis.hdel(this.key('waiting'), job.id);
        this.ownJobs.delete(job.id);
        if (removed === 1) expired.push(job);
      }
      return expired;
    });
  }

  async nextExpiry(): Promise<number | undefined> {
    const [oldest] = await this.waiting();
    return oldest && oldest.submittedAt + this.options.queueTimeoutMs;
  }

  async plan(context: SchedulingContext): Promise<readonly QueuedJob[]> {
    return this.schedulerOf(await this.waiting()).plan(context) as readonly QueuedJob[];
  }

  async size(): Promise<number> {
    return this.ask(() => this.redis.hlen(this.key('waiting')));
  }

  async waitingFor(host: string): Promise<number> {
    return (await this.waiting()).filter((job) => job.host === host).length;
  }

  async nextDeadline(context: ClaimContext): Promise<number | undefined> {
    const waiting = await this.waiting();
    return waiting.length === 0 ? undefined : this.schedulerOf(waiting).nextDeadline(context);
  }

  async oldestOf(mode: string): Promise<QueuedJob | undefined> {
    return this.schedulerOf(await this.waiting()).oldestOf(mode) as QueuedJob | undefined;
  }

  /**
   * This gateway stops queueing: the jobs it queued that still wait leave the queue and are returned, to be answered
   * 503 as the in-memory queue answers its own (their callers are connected here); the other gateways' jobs stay.
   * Running jobs still end here (`dispose` follows).
   */
  async close(): Promise<readonly QueuedJob[]> {
    this.closed = true;
    const gone: QueuedJob[] = [];
    for (const id of [...this.ownJobs]) {
      const job = await this.cancel(id).catch(() => undefined);
      if (job) gone.push(job);
    }
    return gone;
  }

  /**
   * Closes the connections (the command connection it was given too) once nothing runs here any more. A job still
   * held keeps its lock until it lapses, then another gateway runs it (at least once).
   */
  async dispose(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.records.stop();
    this.subscriber.disconnect();
    await Promise.all([...this.lanes.values()].map(({ worker }) => worker.close(true).catch(() => undefined)));
    await Promise.all([...this.lanes.values()].map(({ queue }) => queue.close().catch(() => undefined)));
    this.lanes.clear();
    this.bull.disconnect();
    this.redis.disconnect();
  }

  /** Every waiting job, oldest first (one HGETALL: the index holds the waiting jobs and nothing else). */
  private async waiting(): Promise<QueuedJob[]> {
    const all = await this.ask(() => this.redis.hvals(this.key('waiting')));
    return all.map((raw) => JSON.parse(raw) as QueuedJob).sort((a, b) => a.seq - b.seq);
  }

  private schedulerOf(waiting: readonly QueuedJob[]): Scheduler {
    const { schedulerMaxDelayMs: maxDelayMs } = this.options;
    const scheduler = maxDelayMs === 0 ? new FifoScheduler() : new ModeAwareScheduler({ maxDelayMs });
    for (const job of waiting) scheduler.add(job);
    return scheduler;
  }

  /** BullMQ's queue and worker (manual fetching: no processor, not run) for one lane. */
  private lane(name: string): Lane {
    let lane = this.lanes.get(name);
    if (lane) return lane;
    const { prefix, lockMs, maxStalledCount } = this.options;
    const queue = new Queue<QueuedJob>(name, { connection: this.redis, prefix });
    const worker = new Worker<QueuedJob>(name, undefined, {
      connection: this.bull,
      prefix,
      autorun: false,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount,
    });
    queue.on('error', () => undefined);
    worker.on('error', (error) => this.logger.warn(`queue '${name}': ${error.message}`));
    worker.on('stalled', (id) => void this.stalled(name, id));
    lane = { queue, worker };
    this.lanes.set(name, lane);
    void this.redis.sadd(this.key('lanes'), name).catch(() => undefined);
    worker.startStalledCheckTimer().catch((error: unknown) => this.logger.warn(`stalled check: ${String(error)}`));
    return lane;
  }

  /** BullMQ put a job whose lock lapsed back to wait: it waits in the index again (unless a claim took it since). */
  private async stalled(name: string, id: string): Promise<void> {
    this.logger.warn(`job ${id} lost its lock (its gateway stopped renewing it): it waits to run again`);
    try {
      await this.locked(async () => {
        const job = await this.lane(name).queue.getJob(id);
        if (!job || !(await job.isWaiting())) return;
        if (job.data.host !== undefined) {
          // Bound to a host of the gateway that died: no other may run it, and it must not hold the barriers up.
          await job.remove();
          this.records.finish(id, {
            state: 'failed',
            error: toHttpError(
              new ModelHostUnavailableError(`model host ${job.data.host} went away with its gateway while it ran this`),
            ).body,
          });
          return;
        }
        await this.redis.hset(this.key('waiting'), id, JSON.stringify(job.data));
        await this.redis.publish(this.key('notify'), 'work');
      });
    } catch (error) {
      this.logger.warn(`job ${id} back from a stall: ${String(error)}`);
    }
  }

  private async openKnownLanes(): Promise<void> {
    if (this.closed) return;
    try {
      for (const name of await this.redis.smembers(this.key('lanes'))) this.lane(name);
    } catch {
      // Redis away: the next round opens them.
    }
  }

  private renewLocks(): void {
    for (const [id, { job, token }] of this.held) {
      job.extendLock(token, this.options.lockMs).then(
        (renewed) => {
          if (renewed || this.held.get(id)?.token !== token) return;
          // Lapsed (this process stalled past REDIS_LOCK_MS, or Redis was away): the stalled check gives the job to
          // another gateway; this one finishes its run, and the first record to finish is the job's.
          this.held.delete(id);
          this.logger.warn(`job ${id}: its lock lapsed; another gateway may run it again`);
        },
        (error: unknown) => this.logger.warn(`job ${id}: renewing its lock: ${String(error)}`),
      );
    }
  }

  /** The job ended here: BullMQ is told (which removes it), and its lock is no longer renewed. */
  private release(id: string, state: JobState, error: ErrorBody | undefined): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    const { job, token } = held;
    const done =
      state === 'completed'
        ? job.moveToCompleted(null, token, false)
        : job.moveToFailed(new Error(error?.message ?? state), token, false);
    done.catch((failure: unknown) => this.logger.warn(`job ${id}: telling the queue it ended: ${String(failure)}`));
  }

  /** Runs `step` holding the queue's lock: this gateway's steps one at a time, every gateway's one at a time. */
  private async locked<T>(step: () => Promise<T>): Promise<T> {
    const turn = this.localTurn.then(() => this.holdingLock(step));
    this.localTurn = turn.catch(() => undefined);
    return turn;
  }

  private async holdingLock<T>(step: () => Promise<T>): Promise<T> {
    {
      const token = randomUUID();
      for (let pause = 1; ; pause = Math.min(pause * 2, 25)) {
        const got = await this.ask(() => this.redis.set(this.key('lock'), token, 'PX', MUTEX_MS, 'NX'));
        if (got) break;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
      try {
        return await step();
      } catch (error) {
        throw this.unavailable(error);
      } finally {
        await this.redis.eval(RELEASE_LOCK, 1, this.key('lock'), token).catch(() => undefined);
      }
    }
  }

  /** A Redis command whose failure means Redis is away: a QueueUnavailableError saying so. */
  private async ask<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /** A failure of Redis itself becomes a QueueUnavailableError (503); any other error stays what it is. */
  private unavailable(error: unknown): Error {
    const message = (error as Error).message ?? String(error);
    const redisAway = this.redis.status !== 'ready' || REDIS_AWAY.test(message);
    if (!redisAway || error instanceof QueueUnavailableError) return error as Error;
    return new QueueUnavailableError(
      `Redis at ${this.where()} cannot be reached (${message}); new work waits until it is back`,
    );
  }
}

/** What ioredis says when Redis is away (a closed or refused connection, a command given up on). */
const REDIS_AWAY =
  /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|ETIMEDOUT|MaxRetriesPerRequest|max retries/i;

/** Deletes the lock only if it is still this step's (it may have lapsed and been taken). */
const RELEASE_LOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** The BullMQ queue a job waits in: its mode's for a generation, the barriers' for the rest. */
function laneOf(job: QueuedJob): string {
  return job.kind === 'generation' && job.mode !== undefined ? `mode.${encodeURIComponent(job.mode)}` : BARRIER_QUEUE;
}

function unavailableBody(error: Error): ErrorBody {
  return { error: 'queue_unavailable', message: error.message, statusCode: 503 };
}
