import { Injectable, type OnModuleDestroy } from '@nestjs/common';

import type { GatewayEvent, JobBusEvent } from '../events/event.types.js';
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
  /** The switch took a pipeline a prefetch had built (PREFETCH); null without a switch. */
  readonly switch_prefetched: boolean | null;
  readonly generate_ms: number | null;
  /** The error's code (`out_of_memory`, `cancelled`, ...) when it did not complete. */
  readonly error: string | null;
}

export type JobLogLevel = 'info' | 'warn';
export type JobLogSink = (level: JobLogLevel, fields: JobLogFields, message: string) => void;

export const JOB_FINISHED_MESSAGE = 'job finished';

/** The bus's final job events: the log's only input. */
export const FINISHED_JOB_EVENTS = ['job.completed', 'job.failed', 'job.cancelled'] as const;

/** Writes one line per finished job, from the job events alone. */
@Injectable()
export class JobLogService implements OnModuleDestroy {
  private readonly unsubscribe: () => void;

  /** `subscribe`: the bus's events of the given types (EventBus.subscribe, unwrapped). */
  constructor(
    subscribe: (listener: (event: GatewayEvent) => void, types: readonly string[]) => () => void,
    sink: JobLogSink,
  ) {
    this.unsubscribe = subscribe((event) => {
      const { type, job } = event as JobBusEvent;
      const outcome = type.slice('job.'.length) as JobLogFields['outcome'];
      sink(outcome === 'failed' ? 'warn' : 'info', jobLogFields(job, outcome), JOB_FINISHED_MESSAGE);
    }, FINISHED_JOB_EVENTS);
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
    switch_prefetched: job.switch?.prefetched ?? null,
    generate_ms: job.generate_ms,
    error: job.error?.error ?? null,
  };
}
