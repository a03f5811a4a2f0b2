import type { ErrorBody } from '../errors/http-error.table.js';
import type { LoadResult } from '../sidecar/sidecar.types.js';

export type JobKind = 'generation' | 'mode-switch' | 'custom';
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** The states a job ends in: it never leaves them. */
export const FINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** A mode switch made in a job's turn: from what, to what, and where the model came from. */
export interface JobSwitch {
  readonly from_mode: string | null;
  readonly to_mode: string;
  readonly source: LoadResult['source'];
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
}

/** A completed generation's image and the headers it is served with. */
export interface JobImage {
  readonly png: Buffer;
  readonly mode: string;
  readonly seed: number;
  readonly superres: boolean;
}
