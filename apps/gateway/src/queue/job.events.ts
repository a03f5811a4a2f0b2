import { Injectable } from '@nestjs/common';

import type { JobSnapshot } from './job-record.types.js';

/**
 * Every change of a job, as a tagged union: `job` is the job after the change, one frozen snapshot shared by every
 * listener (render it with toJobRecord to show it). Metrics, logs and the job event stream subscribe to these.
 */
export type JobEvent =
  | { readonly type: 'queued'; readonly job: JobSnapshot }
  | { readonly type: 'started'; readonly job: JobSnapshot }
  | {
      readonly type: 'switching';
      readonly job: JobSnapshot;
      readonly from_mode: string | null;
      readonly to_mode: string;
    }
  | { readonly type: 'progress'; readonly job: JobSnapshot; readonly step: number; readonly total_steps: number }
  | { readonly type: 'completed'; readonly job: JobSnapshot }
  | { readonly type: 'failed'; readonly job: JobSnapshot }
  | { readonly type: 'cancelled'; readonly job: JobSnapshot };

export type JobEventType = JobEvent['type'];
export type JobEventListener = (event: JobEvent) => void;

/** The bus of job events. A listener that throws is logged by nobody and harms nobody: it is isolated. */
@Injectable()
export class JobEvents {
  /**
   * Replaced, never changed, when someone subscribes or unsubscribes: an emit walks the array it started with (a
   * listener may unsubscribe meanwhile) without a copy per event.
   */
  private listeners: readonly JobEventListener[] = [];

  /** Calls `listener` for every event from now on; the returned function unsubscribes. */
  on(listener: JobEventListener): () => void {
    if (!this.listeners.includes(listener)) this.listeners = [...this.listeners, listener];
    return () => this.off(listener);
  }

  off(listener: JobEventListener): void {
    this.listeners = this.listeners.filter((subscribed) => subscribed !== listener);
  }

  emit(event: JobEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber must not stop the queue or the others.
      }
    }
  }
}
