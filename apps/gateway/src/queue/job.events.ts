import { Injectable } from '@nestjs/common';

import { EventBus } from '../events/event-bus.js';
import type { JobBusEvent } from '../events/event.types.js';
import type { JobSnapshot } from './job-record.types.js';

/**
 * A change of a job as the job store reports it: `job` is the job after the change, one frozen snapshot shared by
 * every subscriber. Published on the bus as `job.<type>` (events/event.types.ts), where metrics, the job log,
 * keep-alive and the event streams read it.
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

/**
 * The job store's publisher onto the bus. Metrics, the job log, keep-alive and the streams subscribe to the bus;
 * `on` reads the same bus back in the store's shape, for the engine's own tests.
 */
@Injectable()
export class JobEvents {
  constructor(readonly bus: EventBus = new EventBus()) {}

  emit(event: JobEvent): void {
    this.bus.publish(toBusEvent(event));
  }

  /** `emit` of a change that carries nothing but the job (three per job): published with no JobEvent made first. */
  emitState(type: keyof typeof BUS_TYPE, job: JobSnapshot): void {
    this.bus.publish({ type: BUS_TYPE[type], job, host: job.host ?? null });
  }

  /** Calls `listener` for every job event on the bus from now on; the returned function unsubscribes. */
  on(listener: JobEventListener): () => void {
    return this.bus.subscribe((event) => listener(fromBusEvent(event as JobBusEvent)), ['job.']);
  }
}

/** The bus's form of a job event: its type under `job.`, and the host that runs the job (null while queued). */
export function toBusEvent(event: JobEvent): JobBusEvent {
  const host = event.job.host ?? null;
  switch (event.type) {
    case 'switching':
      return { type: 'job.switching', job: event.job, host, from_mode: event.from_mode, to_mode: event.to_mode };
    case 'progress':
      return { type: 'job.progress', job: event.job, host, step: event.step, total_steps: event.total_steps };
    default:
      return { type: BUS_TYPE[event.type], job: event.job, host };
  }
}

/**
 * One string per type, made once: a type built per event (`job.${type}`) is a new string that the bus and metrics,
 * looking it up in their maps, each hash again (three per job).
 */
const BUS_TYPE = {
  queued: 'job.queued',
  started: 'job.started',
  completed: 'job.completed',
  failed: 'job.failed',
  cancelled: 'job.cancelled',
} as const;

/** The store's form of a bus job event. */
function fromBusEvent(event: JobBusEvent): JobEvent {
  switch (event.type) {
    case 'job.switching':
      return { type: 'switching', job: event.job, from_mode: event.from_mode, to_mode: event.to_mode };
    case 'job.progress':
      return { type: 'progress', job: event.job, step: event.step, total_steps: event.total_steps };
    default:
      return { type: event.type.slice('job.'.length) as 'queued', job: event.job };
  }
}
