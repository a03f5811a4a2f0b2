import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';

import type { ErrorBody } from '../errors/http-error.table.js';
import type { ImageLookup, JobListQuery, JobStore } from './job.store.js';
import type { JobEvent, JobEvents } from './job.events.js';
import type { JobImage, JobKind, JobRecord, JobSnapshot, JobState, JobSwitch } from './job-record.types.js';
import type { JobRecords } from './queue-backend.js';

/** Events the stream keeps (XADD MAXLEN ~): a gateway that was away longer reads the records instead. */
const STREAM_MAX = 10_000;
/** How long one XREAD waits for events before it asks again (and sees a close). */
const READ_BLOCK_MS = 1_000;
/** Records of jobs not yet finished outlive a gateway that died without finishing them, but not for ever. */
const LIVE_RECORD_MS = 24 * 3_600_000;
const FINAL: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);

export interface RedisRecordsOptions {
  /** Key prefix shared by the gateways of one queue. */
  readonly prefix: string;
  /** This process's name on the stream: it skips its own events there. */
  readonly origin: string;
  /** JOB_RETENTION_MS: how long a finished job's record and image stay in Redis. */
  readonly retentionMs: number;
}

/** What the backend is told when a job ends here: it releases the job's lock in the queue (redis-queue.backend.ts). */
export type FinishListener = (id: string, state: JobState, error: ErrorBody | undefined) => void;

/**
 * Job records shared by every gateway of a Redis queue. Each gateway keeps a JobStore as its own view (reads are
 * synchronous and local, as the JobRecords seam says) and mirrors every other gateway's changes into it: each change
 * here is appended to one Redis stream (`<prefix>:events`, the JobEvent as JSON) and the record's latest snapshot
 * to `<prefix>:rec:<id>`; a reader loop applies the stream's events from other gateways to this store, and so to
 * this gateway's bus (/api/events, /api/jobs/:id/events). A gateway that starts loads the records first, quietly.
 * Images are binary keys (`<prefix>:img:<id>`, a hash: png, mode, seed, superres) kept JOB_RETENTION_MS, never in
 * BullMQ's return value; `image(id)` reads them there when the job finished elsewhere.
 *
 * Writes are told in order on one connection (ioredis keeps its order): an image is stored before the event that
 * says its job completed, so a gateway that reads the event finds the image.
 */
export class RedisJobRecords implements JobRecords {
  private readonly logger = new Logger(RedisJobRecords.name);
  readonly events: JobEvents;
  /** True while a change from another gateway is applied: it is not published again. */
  private mirroring = false;
  private readonly unsubscribe: () => void;
  private reader: Redis | undefined;
  private stopped = false;
  private reading: Promise<void> | undefined;
  /** Told when a job ends here (the backend's lock release). */
  onFinish: FinishListener | undefined;

  constructor(
    private readonly local: JobStore,
    private readonly redis: Redis,
    private readonly options: RedisRecordsOptions,
  ) {
    this.events = local.events;
    this.unsubscribe = local.events.on((event) => {
      if (!this.mirroring) this.publish(event);
    });
  }

  private key(what: string): string {
    return `${this.options.prefix}:${what}`;
  }

  /**
   * Loads the records Redis holds (quietly: they are history, not news), then follows the stream from where it was
   * when the load began, so nothing in between is missed.
   */
  async start(): Promise<void> {
    const [last] = await this.redis.xrevrange(this.key('events'), '+', '-', 'COUNT', 1);
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.key('rec:*'), 'COUNT', 500);
      cursor = next;
      const values = keys.length > 0 ? await this.redis.mget(keys) : [];
      const jobs = values.filter((value): value is string => value !== null).map((v) => JSON.parse(v) as JobSnapshot);
      jobs.sort((a, b) => a.created_ms - b.created_ms);
      this.apply(
        jobs.map((job) => ({ type: eventOf(job.state), job }) as JobEvent),
        false,
      );
    } while (cursor !== '0');
    this.reader = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.reader.on('error', () => undefined);
    this.reading = this.follow(last?.[0] ?? '0-0');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    this.reader?.disconnect();
    await this.reading;
  }

  private async follow(from: string): Promise<void> {
    let lastId = from;
    while (!this.stopped) {
      try {
        const answer = await this.reader?.xread(
          'COUNT',
          500,
          'BLOCK',
          READ_BLOCK_MS,
          'STREAMS',
          this.key('events'),
          lastId,
        );
        for (const [, entries] of answer ?? []) {
          const events: JobEvent[] = [];
          for (const [id, fields] of entries) {
            lastId = id;
            if (fields[1] !== this.options.origin) events.push(JSON.parse(fields[3] ?? 'null') as JobEvent);
          }
          this.apply(events, true);
        }
      } catch (error) {
        if (this.stopped) return;
        // Redis away: the events meanwhile are lost to this view (their records are not); ask again shortly.
        this.logger.warn(`reading the job events from Redis: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, READ_BLOCK_MS));
      }
    }
  }

  private apply(events: readonly JobEvent[], emit: boolean): void {
    this.mirroring = true;
    try {
      for (const event of events) this.local.mirror(event, emit);
    } finally {
      this.mirroring = false;
    }
  }

  /** One change, told to Redis: the stream (every gateway's bus) and, but for progress, the record itself. */
  private publish(event: JobEvent): void {
    const { job } = event;
    const multi = this.redis.multi();
    if (event.type !== 'progress') {
      const ttl = FINAL.has(job.state) ? this.options.retentionMs : LIVE_RECORD_MS;
      multi.set(this.key(`rec:${job.id}`), JSON.stringify(job), 'PX', Math.max(1, ttl));
    }
    multi.xadd(
      this.key('events'),
      'MAXLEN',
      '~',
      STREAM_MAX,
      '*',
      'origin',
      this.options.origin,
      'event',
      JSON.stringify(event),
    );
    multi.exec().catch((error: unknown) => this.lost('a job event', error));
  }

  private lost(what: string, error: unknown): void {
    this.logger.warn(`could not write ${what} to Redis: ${(error as Error).message}`);
  }

  create(kind: JobKind, mode: string | undefined, seed: number | undefined, id?: string, owner?: string): JobSnapshot {
    return this.local.create(kind, mode, seed, id, owner);
  }

  started(id: string, host: string): void {
    this.local.started(id, host);
  }

  moved(id: string, host: string): void {
    this.local.moved(id, host);
  }

  switching(id: string, from: string | undefined, to: string): void {
    this.local.switching(id, from, to);
  }

  switched(id: string, change: JobSwitch, ms: number): void {
    this.local.switched(id, change, ms);
  }

  progress(id: string, step: number, totalSteps: number): void {
    this.local.progress(id, step, totalSteps);
  }

  finish(
    id: string,
    outcome:
      | { readonly state: 'completed'; readonly generateMs?: number | undefined; readonly image?: JobImage | undefined }
      | { readonly state: 'failed' | 'cancelled'; readonly error: ErrorBody },
  ): void {
    const error = outcome.state === 'completed' ? undefined : outcome.error;
    // Already told: it ended on another gateway (a caller here was answered from that, or this gateway was too slow
    // renewing its lock and another ran it again). Its record stays; the queue still hears it ended here.
    if (this.local.snapshot(id)?.finished_ms != null) {
      this.onFinish?.(id, outcome.state, error);
      return;
    }
    if (outcome.state === 'completed' && outcome.image) {
      const { png, mode, seed, superres } = outcome.image;
      const key = this.key(`img:${id}`);
      this.redis
        .multi()
        .hset(key, { png, mode, seed: String(seed), superres: superres ? '1' : '0' })
        .pexpire(key, Math.max(1, this.options.retentionMs))
        .exec()
        .catch((error: unknown) => this.lost(`job ${id}'s image`, error));
    }
    this.local.finish(id, outcome);
    this.onFinish?.(id, outcome.state, error);
  }

  get(id: string): JobRecord | undefined {
    return this.local.get(id);
  }

  snapshot(id: string): JobSnapshot | undefined {
    return this.local.snapshot(id);
  }

  list(query: JobListQuery): JobSnapshot[] {
    return this.local.list(query);
  }

  /** This gateway's copy when it holds one; else Redis's, for a generation that completed on another gateway. */
  async image(id: string): Promise<ImageLookup> {
    const here = this.local.image(id);
    if (here.found === 'image' || here.found === 'expired') return here;
    const job = this.local.snapshot(id);
    if (job && (job.kind !== 'generation' || job.state !== 'completed')) return here;
    const stored = await this.redis.hgetallBuffer(this.key(`img:${id}`));
    const png = stored.png;
    if (!png) return job ? { found: 'expired' } : here;
    const image: JobImage = {
      png,
      mode: stored.mode?.toString() ?? job?.mode ?? '',
      seed: Number(stored.seed?.toString()),
      superres: stored.superres?.toString() === '1',
    };
    return { found: 'image', image };
  }
}

/** The event that left a record in `state` (a record loaded at start is told as its latest change). */
function eventOf(state: JobState): JobEvent['type'] {
  return state === 'running' ? 'started' : state;
}
