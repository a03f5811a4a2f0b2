import { randomUUID } from 'node:crypto';

import { Inject, Injectable } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import type { ErrorBody } from '../errors/http-error.table.js';
import type { JobRecord, JobImage, JobKind, JobState, JobSwitch } from './job-record.types.js';
import { JobEvents } from './job.events.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Stored {
  record: Mutable<JobRecord>;
  /** ms, the store's clock: when it was created, started, finished. */
  createdMs: number;
  startedMs?: number;
  finishedMs?: number;
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
}

/**
 * Every job the engine knows, as plain records, and every change to them as a JobEvent. Waiting and running jobs
 * are bounded by QUEUE_MAX; finished ones by JOB_RETENTION_MS and JOB_RETENTION_MAX, their images by
 * JOB_RESULTS_MAX_BYTES (the oldest go first).
 */
@Injectable()
export class JobStore {
  private readonly jobs = new Map<string, Stored>();
  private imageBytes = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    readonly events: JobEvents,
  ) {}

  create(kind: JobKind, mode: string | undefined, seed: number | undefined): JobRecord {
    this.prune();
    const now = Date.now();
    const record: Mutable<JobRecord> = {
      id: randomUUID(),
      kind,
      mode: mode ?? null,
      state: 'queued',
      position: null,
      progress: null,
      seed: seed ?? null,
      created_at: new Date(now).toISOString(),
      started_at: null,
      finished_at: null,
      queue_ms: null,
      switch_ms: null,
      generate_ms: null,
      switch: null,
      error: null,
    };
    this.jobs.set(record.id, { record, createdMs: now });
    this.events.emit({ type: 'queued', job: { ...record } });
    return { ...record };
  }

  started(id: string): void {
    const stored = this.live(id);
    if (!stored) return;
    const now = Date.now();
    stored.startedMs = now;
    Object.assign(stored.record, {
      state: 'running',
      started_at: new Date(now).toISOString(),
      queue_ms: now - stored.createdMs,
    });
    this.events.emit({ type: 'started', job: { ...stored.record } });
  }

  /** A switch begins in the job's turn; `switched` records where the model came from once loaded. */
  switching(id: string, from: string | undefined, to: string): void {
    const stored = this.live(id);
    if (!stored) return;
    this.events.emit({ type: 'switching', job: { ...stored.record }, from_mode: from ?? null, to_mode: to });
  }

  switched(id: string, change: JobSwitch, ms: number): void {
    const stored = this.live(id);
    if (!stored) return;
    Object.assign(stored.record, { switch: change, switch_ms: (stored.record.switch_ms ?? 0) + ms });
  }

  progress(id: string, step: number, totalSteps: number): void {
    const stored = this.live(id);
    if (!stored) return;
    stored.record.progress = { step, total_steps: totalSteps };
    this.events.emit({ type: 'progress', job: { ...stored.record }, step, total_steps: totalSteps });
  }

  /** The job ended; `generateMs` is the generation's own time, `image` its result when it completed one. */
  finish(
    id: string,
    outcome:
      | { readonly state: 'completed'; readonly generateMs?: number; readonly image?: JobImage }
      | { readonly state: 'failed' | 'cancelled'; readonly error: ErrorBody },
  ): void {
    const stored = this.live(id);
    if (!stored) return;
    const now = Date.now();
    stored.finishedMs = now;
    Object.assign(stored.record, {
      state: outcome.state,
      position: null,
      finished_at: new Date(now).toISOString(),
      queue_ms: stored.record.queue_ms ?? now - stored.createdMs,
    });
    if (outcome.state === 'completed') {
      if (outcome.generateMs !== undefined) stored.record.generate_ms = outcome.generateMs;
      if (outcome.image) {
        stored.image = outcome.image;
        this.imageBytes += outcome.image.png.length;
      }
    } else {
      stored.record.error = outcome.error;
    }
    this.events.emit({ type: outcome.state, job: { ...stored.record } });
    this.prune();
  }

  get(id: string): JobRecord | undefined {
    this.prune();
    const stored = this.jobs.get(id);
    return stored && { ...stored.record };
  }

  /** Newest first. */
  list(query: JobListQuery): JobRecord[] {
    this.prune();
    const found: JobRecord[] = [];
    const all = [...this.jobs.values()];
    for (let i = all.length - 1; i >= 0 && found.length < query.limit; i -= 1) {
      const { record } = all[i];
      if (query.state === undefined || record.state === query.state) found.push({ ...record });
    }
    return found;
  }

  image(id: string): ImageLookup {
    this.prune();
    const stored = this.jobs.get(id);
    if (!stored) return { found: 'unknown' };
    if (stored.image) return { found: 'image', image: stored.image };
    if (stored.imageExpired) return { found: 'expired' };
    return { found: 'none', state: stored.record.state };
  }

  /** A job not yet finished, or undefined (unknown, or finished: finished records do not change). */
  private live(id: string): Stored | undefined {
    const stored = this.jobs.get(id);
    return stored && stored.finishedMs === undefined ? stored : undefined;
  }

  /** Drops finished jobs past JOB_RETENTION_MS or JOB_RETENTION_MAX, and images past JOB_RESULTS_MAX_BYTES. */
  private prune(): void {
    const now = Date.now();
    const finished = [...this.jobs.values()].filter((stored) => stored.finishedMs !== undefined);
    // Finished order, oldest first: what each bound drops first.
    finished.sort((a, b) => (a.finishedMs as number) - (b.finishedMs as number));
    let excess = finished.length - this.config.jobRetentionMax;
    for (const stored of finished) {
      if (excess > 0 || now - (stored.finishedMs as number) > this.config.jobRetentionMs) {
        excess -= 1;
        this.drop(stored);
      } else if (this.imageBytes > this.config.jobResultsMaxBytes && stored.image) {
        this.imageBytes -= stored.image.png.length;
        stored.image = undefined;
        stored.imageExpired = true;
      }
    }
  }

  private drop(stored: Stored): void {
    if (stored.image) this.imageBytes -= stored.image.png.length;
    this.jobs.delete(stored.record.id);
  }
}
