import { Injectable } from '@nestjs/common';

import type { JobRecord } from './job-record.types.js';

/**
 * Every change of a job, as a tagged union: `job` is the record after the change. Metrics, logs and the job event
 * stream subscribe to these.
 */
export type JobEvent =
  | { readonly type: 'queued'; readonly job: JobRecord }
  | { readonly type: 'started'; readonly job: JobRecord }
  | { readonly type: 'switching'; readonly job: JobRecord; readonly from_mode: string | null; readonly to_mode: string }
  | { readonly type: 'progress'; readonly job: JobRecord; readonly step: number; readonly total_steps: number }
  | { readonly type: 'completed'; readonly job: JobRecord }
  | { readonly type: 'failed'; readonly job: JobRecord }
  | { readonly type: 'cancelled'; readonly job: JobRecord };

export type JobEventType = JobEvent['type'];
export type JobEventListener = (event: JobEvent) => void;

/** The bus of job events. A listener that throws is logged by nobody and harms nobody: it is isolated. */
@Injectable()
export class JobEvents {
  private readonly listeners = new Set<JobEventListener>();

  /** Calls `listener` for every event from now on; the returned function unsubscribes. */
  on(listener: JobEventListener): () => void {
    this.listeners.add(listener);
    return () => this.off(listener);
  }

  off(listener: JobEventListener): void {
    this.listeners.delete(listener);
  }

  emit(event: JobEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // One broken subscriber must not stop the queue or the others.
      }
    }
  }
}
