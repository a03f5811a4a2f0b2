import type { ErrorBody } from '../errors/http-error.table.js';
import type { LoadResult } from '../model-host/model-host.types.js';

export type JobKind = 'generation' | 'mode-switch' | 'custom';
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** The states a job ends in: it never leaves them. */
export const FINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** A mode switch made in a job's turn: from what, to what, and where the model came from. */
export interface JobSwitch {
  readonly from_mode: string | null;
  readonly to_mode: string;
  readonly source: LoadResult['source'];
  /** The pipeline came from a prefetch: built into the RAM tier while an earlier job ran (PREFETCH). */
  readonly prefetched: boolean;
}

/**
 * A job as GET /api/jobs/:id shows it: plain JSON data, snake_case like the rest of the API. `position` is filled in
 * when the job is read (it is what the scheduler will do now, which changes as other jobs arrive and leave).
 */
export interface JobRecord {
  readonly id: string;
  readonly kind: JobKind;
  readonly mode: string | null;
  readonly state: JobState;
  /** While queued: 1 runs next. Null otherwise. */
  readonly position: number | null;
  readonly progress: { readonly step: number; readonly total_steps: number } | null;
  readonly seed: number | null;
  readonly created_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly queue_ms: number | null;
  readonly switch_ms: number | null;
  readonly generate_ms: number | null;
  readonly switch: JobSwitch | null;
  readonly error: ErrorBody | null;
  /** The model host that ran it (the last one, for a generation retried after its host died); null until it runs. */
  readonly host: string | null;
}

/**
 * A job as the engine keeps it and its events carry: one frozen object per change (never copied per reader), times
 * as ms since the epoch. `toJobRecord` renders it as the API shows it, when it is read over HTTP.
 */
export interface JobSnapshot {
  readonly id: string;
  readonly kind: JobKind;
  readonly mode: string | null;
  readonly state: JobState;
  readonly progress: JobRecord['progress'];
  readonly seed: number | null;
  readonly created_ms: number;
  readonly started_ms: number | null;
  readonly finished_ms: number | null;
  readonly queue_ms: number | null;
  readonly switch_ms: number | null;
  readonly generate_ms: number | null;
  readonly switch: JobSwitch | null;
  readonly error: ErrorBody | null;
  readonly host: string | null;
  /**
   * Who queued it, set at creation: a caller's id (auth/caller.ts) for a generation a request made; null for the
   * server's and the admin routes' work (switches, unloads, keep-alive expiries). Not shown in the API.
   */
  readonly owner: string | null;
}

/** The JobRecord of a snapshot; `position` is the queued job's place now (null otherwise). */
export function toJobRecord(job: JobSnapshot, position: number | null = null): JobRecord {
  return {
    id: job.id,
    kind: job.kind,
    mode: job.mode,
    state: job.state,
    position,
    progress: job.progress,
    seed: job.seed,
    created_at: isoDate(job.created_ms),
    started_at: job.started_ms === null ? null : isoDate(job.started_ms),
    finished_at: job.finished_ms === null ? null : isoDate(job.finished_ms),
    queue_ms: job.queue_ms,
    switch_ms: job.switch_ms,
    generate_ms: job.generate_ms,
    switch: job.switch,
    error: job.error,
    host: job.host,
  };
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

/** A completed generation's image and the headers it is served with. */
export interface JobImage {
  readonly png: Buffer;
  readonly mode: string;
  readonly seed: number;
  readonly superres: boolean;
}
