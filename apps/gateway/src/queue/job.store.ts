import { randomUUID } from 'node:crypto';

import { Inject, Injectable } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { ErrorBody } from '../errors/http-error.table.js';
import {
  toJobRecord,
  type JobImage,
  type JobKind,
  type JobRecord,
  type JobSnapshot,
  type JobState,
  type JobSwitch,
} from './job-record.types.js';
import { Fifo } from './fifo.js';
import { JobEvents, type JobEvent } from './job.events.js';
import type { JobRecords } from './queue-backend.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Stored {
  /** The job now: replaced, never changed, on each change. */
  job: JobSnapshot;
  image?: JobImage;
  /** The image was dropped to keep JOB_RESULTS_MAX_BYTES. */
  imageExpired?: boolean;
}

/** What `image(id)` finds: the image, nothing yet (or never), or one dropped by the byte bound. */
export type ImageLookup =
  | { readonly found: 'image'; readonly image: JobImage }
  | { readonly found: 'expired' }
  | { readonly found: 'none'; readonly state: JobState }
  | { readonly found: 'unknown' };

export interface JobListQuery {
  readonly state?: JobState;
  readonly limit: number;
  /** Only the jobs this says yes to (before the limit counts). */
  readonly visible?: (job: JobSnapshot) => boolean;
}

/**
 * Every job the engine knows, as frozen snapshots, and every change to them as a JobEvent. Waiting and running jobs
 * are bounded by QUEUE_MAX; finished ones by JOB_RETENTION_MS and JOB_RETENTION_MAX, their images by
 * JOB_RESULTS_MAX_BYTES (the oldest go first).
 */
@Injectable()
export class JobStore implements JobRecords {
  private readonly jobs = new Map<string, Stored>();
  /** Finished jobs in the order they finished: the bounds drop from its head. */
  private readonly finished = new Fifo<Stored>();
  /** Those of them that held an image, in the same order (one whose image went is skipped at the head). */
  private readonly withImages = new Fifo<Stored>();
  private imageBytes = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    readonly events: JobEvents,
  ) {}

  /** `id`: the engine's (newJobId), or a new one; `owner`: who queued it (auth/caller.ts), undefined: the server. */
  create(
    kind: JobKind,
    mode: string | undefined,
    seed: number | undefined,
    id: string = newJobId(),
    owner?: string,
  ): JobSnapshot {
    this.prune();
    const job: JobSnapshot = Object.freeze({
      id,
      kind,
      mode: mode ?? null,
      state: 'queued',
      progress: null,
      seed: seed ?? null,
      created_ms: Date.now(),
      started_ms: null,
      finished_ms: null,
      queue_ms: null,
      switch_ms: null,
      generate_ms: null,
      switch: null,
      error: null,
      host: null,
      owner: owner ?? null,
    });
    this.jobs.set(job.id, { job });
    this.events.emitState('queued', job);
    return job;
  }

  /** `host`: the id of the model host that runs it. */
  started(id: string, host: string): void {
    const stored = this.live(id);
    if (!stored) return;
    const now = Date.now();
    const job = this.change(stored, (next) => {
      next.state = 'running';
      next.started_ms = now;
      next.queue_ms = now - next.created_ms;
      next.host = host;
    });
    this.events.emitState('started', job);
  }

  /** A running job moved to another model host (its own died under it): still running, now there. */
  moved(id: string, host: string): void {
    const stored = this.live(id);
    if (!stored) return;
    this.change(stored, (next) => {
      next.host = host;
    });
  }

  /** A switch begins in the job's turn; `switched` records where the model came from once loaded. */
  switching(id: string, from: string | undefined, to: string): void {
    const stored = this.live(id);
    if (!stored) return;
    this.events.emit({ type: 'switching', job: stored.job, from_mode: from ?? null, to_mode: to });
  }

  switched(id: string, change: JobSwitch, ms: number): void {
    const stored = this.live(id);
    if (!stored) return;
    this.change(stored, (next) => {
      next.switch = change;
      next.switch_ms = (next.switch_ms ?? 0) + ms;
    });
  }

  progress(id: string, step: number, totalSteps: number): void {
    const stored = this.live(id);
    if (!stored) return;
    const job = this.change(stored, (next) => {
      next.progress = { step, total_steps: totalSteps };
    });
    this.events.emit({ type: 'progress', job, step, total_steps: totalSteps });
  }

  /** The job ended; `generateMs` is the generation's own time, `image` its result when it completed one. */
  finish(
    id: string,
    outcome:
      | { readonly state: 'completed'; readonly generateMs?: number | undefined; readonly image?: JobImage | undefined }
      | { readonly state: 'failed' | 'cancelled'; readonly error: ErrorBody },
  ): void {
    const stored = this.live(id);
    if (!stored) return;
    const now = Date.now();
    const finished = this.change(stored, (next) => {
      next.state = outcome.state;
      next.finished_ms = now;
      next.queue_ms ??= now - next.created_ms;
      if (outcome.state === 'completed') next.generate_ms = outcome.generateMs ?? next.generate_ms;
      else next.error = outcome.error;
    });
    if (outcome.state === 'completed' && outcome.image) {
      stored.image = outcome.image;
      this.imageBytes += outcome.image.png.length;
      this.withImages.push(stored);
    }
    this.finished.push(stored);
    this.events.emitState(outcome.state, finished);
    this.prune();
  }

  /**
   * A change another gateway made (a shared queue backend: redis-job.records.ts): its snapshot replaces this store's,
   * and the event goes on this gateway's bus (`emit` false: a backlog read at start, told to nobody). A finished job
   * never changes again, whoever reports it.
   */
  mirror(event: JobEvent, emit = true): void {
    const { job } = event;
    let stored = this.jobs.get(job.id);
    if (stored?.job.finished_ms != null) return;
    if (stored) stored.job = job;
    else this.jobs.set(job.id, (stored = { job }));
    if (job.finished_ms !== null) {
      this.finished.push(stored);
      this.prune();
    }
    if (emit) this.events.emit(event);
  }

  /** The job as GET /api/jobs/:id shows it, its `position` null (the engine knows it, see JobsService). */
  get(id: string): JobRecord | undefined {
    this.prune();
    const stored = this.jobs.get(id);
    return stored && toJobRecord(stored.job);
  }

  /** The job as it is now, not rendered; undefined once dropped. */
  snapshot(id: string): JobSnapshot | undefined {
    this.prune();
    return this.jobs.get(id)?.job;
  }

  /** Newest first. */
  list(query: JobListQuery): JobSnapshot[] {
    this.prune();
    const found: JobSnapshot[] = [];
    const all = [...this.jobs.values()];
    for (let i = all.length - 1; i >= 0 && found.length < query.limit; i -= 1) {
      const { job } = all[i];
      if ((query.state === undefined || job.state === query.state) && (query.visible?.(job) ?? true)) found.push(job);
    }
    return found;
  }

  image(id: string): ImageLookup {
    this.prune();
    const stored = this.jobs.get(id);
    if (!stored) return { found: 'unknown' };
    if (stored.image) return { found: 'image', image: stored.image };
    if (stored.imageExpired) return { found: 'expired' };
    return { found: 'none', state: stored.job.state };
  }

  /** A job not yet finished, or undefined (unknown, or finished: finished records do not change). */
  private live(id: string): Stored | undefined {
    const stored = this.jobs.get(id);
    return stored && stored.job.finished_ms === null ? stored : undefined;
  }

  /** The job's next snapshot: `apply` sets what changed on a copy, which is then frozen. */
  private change(stored: Stored, apply: (job: Mutable<JobSnapshot>) => void): JobSnapshot {
    const job = copyOf(stored.job);
    apply(job);
    stored.job = Object.freeze(job);
    return stored.job;
  }

  /**
   * Drops finished jobs past JOB_RETENTION_MS or JOB_RETENTION_MAX, and images past JOB_RESULTS_MAX_BYTES, oldest
   * first. Each bound stops at the first job it keeps, so a call costs what it drops, not what the store holds
   * (the engine calls it on every create and finish).
   */
  private prune(): void {
    const now = Date.now();
    for (let stored = this.finished.peek(); stored; stored = this.finished.peek()) {
      const overCount = this.finished.size > this.config.jobRetentionMax;
      if (!overCount && now - (stored.job.finished_ms as number) <= this.config.jobRetentionMs) break;
      this.finished.shift();
      this.dropImage(stored);
      this.jobs.delete(stored.job.id);
    }
    for (let stored = this.withImages.peek(); stored; stored = this.withImages.peek()) {
      if (stored.image && this.imageBytes <= this.config.jobResultsMaxBytes) break;
      this.withImages.shift();
      // One still holding its image is still stored: dropping a job drops its image first.
      if (stored.image) stored.imageExpired = true;
      this.dropImage(stored);
    }
  }

  private dropImage(stored: Stored): void {
    if (!stored.image) return;
    this.imageBytes -= stored.image.png.length;
    stored.image = undefined;
  }
}

/** A field-by-field copy: several times faster than a spread of a frozen object. */
function copyOf(job: JobSnapshot): Mutable<JobSnapshot> {
  return {
    id: job.id,
    kind: job.kind,
    mode: job.mode,
    state: job.state,
    progress: job.progress,
    seed: job.seed,
    created_ms: job.created_ms,
    started_ms: job.started_ms,
    finished_ms: job.finished_ms,
    queue_ms: job.queue_ms,
    switch_ms: job.switch_ms,
    generate_ms: job.generate_ms,
    switch: job.switch,
    error: job.error,
    host: job.host,
    owner: job.owner,
  };
}

/**
 * A v4 UUID as one flat string. crypto.randomUUID concatenates its result: a tree of some twenty string objects
 * (about 490 bytes, measured) that every queued and retained job would hold, and each garbage collection copy,
 * where one latin1 round trip leaves a single 62-byte string.
 */
export function newJobId(): string {
  return Buffer.from(randomUUID(), 'latin1').toString('latin1');
}
