import { Injectable, type OnModuleDestroy } from '@nestjs/common';

import type { JobEvent } from '../queue/job.events.js';
import type { JobSnapshot } from '../queue/job-record.types.js';

/** The fields of a finished job's log line (README "Logs"): times in ms, null where the job had no such phase. */
export interface JobLogFields {
  readonly context: 'Jobs';
  readonly job_id: string;
  readonly kind: JobSnapshot['kind'];
  readonly mode: string | null;
  readonly outcome: 'completed' | 'failed' | 'cancelled';
  readonly queue_ms: number | null;
  readonly switch_ms: number | null;
  /** Where the model came from when the job's turn switched modes (disk, ram, shared-base, resident); else null. */
  readonly switch_source: string | null;
  readonly switch_from: string | null;
  readonly generate_ms: number | null;
  /** The error's code (`out_of_memory`, `cancelled`, ...) when it did not complete. */
  readonly error: string | null;
}

export type JobLogLevel = 'info' | 'warn';
export type JobLogSink = (level: JobLogLevel, fields: JobLogFields, message: string) => void;

export const JOB_FINISHED_MESSAGE = 'job finished';

/** Writes one line per finished job, from the job events alone. */
@Injectable()
export class JobLogService implements OnModuleDestroy {
  private readonly unsubscribe: () => void;

  constructor(onJobEvent: (listener: (event: JobEvent) => void) => () => void, sink: JobLogSink) {
    this.unsubscribe = onJobEvent((event) => {
      if (event.type !== 'completed' && event.type !== 'failed' && event.type !== 'cancelled') return;
      sink(event.type === 'failed' ? 'warn' : 'info', jobLogFields(event.job, event.type), JOB_FINISHED_MESSAGE);
    });
  }

  onModuleDestroy(): void {
    this.unsubscribe();
  }
}

export function jobLogFields(job: JobSnapshot, outcome: JobLogFields['outcome']): JobLogFields {
  return {
    context: 'Jobs',
    job_id: job.id,
    kind: job.kind,
    mode: job.mode,
    outcome,
    queue_ms: job.queue_ms,
    switch_ms: job.switch_ms,
    switch_source: job.switch?.source ?? null,
    switch_from: job.switch?.from_mode ?? null,
    generate_ms: job.generate_ms,
    error: job.error?.error ?? null,
  };
}
