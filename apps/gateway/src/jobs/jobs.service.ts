import { Inject, Injectable } from '@nestjs/common';
import type { Response } from 'express';

import type { Caller } from '../auth/api-keys.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EventBus } from '../events/event-bus.js';
import type { JobBusEvent } from '../events/event.types.js';
import { EventStreams } from '../events/event-streams.service.js';
import { JobNotFoundError, JobResultExpiredError, JobStateConflictError } from '../errors/domain.errors.js';
import { GenerationService } from '../generation/generation.service.js';
import type { GenerateRequestDto } from '../generation/dto/generate-request.dto.js';
import {
  FINAL_STATES,
  toJobRecord,
  type JobImage,
  type JobRecord,
  type JobSnapshot,
  type JobState,
} from '../queue/job-record.types.js';
import { JobStore } from '../queue/job.store.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { JOB_PAGE_DEFAULT } from './dto/list-jobs.query.dto.js';
import { mayTouch, requireMayTouch } from './job-access.js';

/** The job API over the pool and its store: records with their live positions, the image, cancel, the event stream. */
@Injectable()
export class JobsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly generation: GenerationService,
    private readonly pool: WorkerPool,
    private readonly store: JobStore,
    private readonly bus: EventBus,
    private readonly streams: EventStreams,
  ) {}

  /** Queues a generation that runs whether or not its poster stays connected. */
  async submit(request: GenerateRequestDto, caller: Caller): Promise<JobRecord> {
    return this.get((await this.generation.submit(request, undefined, caller.id)).id);
  }

  async get(id: string): Promise<JobRecord> {
    const job = this.store.snapshot(id);
    if (!job) throw new JobNotFoundError(id);
    // The plan behind positions is O(queue): only a queued job needs it.
    return toJobRecord(job, job.state === 'queued' ? ((await this.pool.positions()).get(job.id) ?? null) : null);
  }

  /** Newest first; only what `caller` may see (jobs/job-access.ts). */
  async list(state: JobState | undefined, limit = JOB_PAGE_DEFAULT, caller: Caller): Promise<JobRecord[]> {
    const positions = await this.pool.positions();
    const visible = caller.admin ? undefined : (job: JobSnapshot): boolean => mayTouch(job, caller);
    return this.store
      .list({ ...(state && { state }), limit, ...(visible && { visible }) })
      .map((job) => render(job, positions));
  }

  async image(id: string): Promise<JobImage> {
    const found = await this.pool.store.image(id);
    switch (found.found) {
      case 'image':
        return found.image;
      case 'expired':
        throw new JobResultExpiredError(id);
      case 'unknown':
        throw new JobNotFoundError(id);
      case 'none':
        throw new JobStateConflictError(
          found.state === 'completed'
            ? `job '${id}' made no image (it is not a generation)`
            : `job '${id}' is ${found.state}: its image exists once it is completed`,
        );
    }
  }

  /** A queued job ends `cancelled` at once; a running one at its next denoising step. */
  async cancel(id: string, caller: Caller): Promise<JobRecord> {
    const job = this.store.snapshot(id);
    if (job) requireMayTouch(job, caller);
    const record = await this.get(id);
    if (FINAL_STATES.includes(record.state)) {
      throw new JobStateConflictError(`job '${id}' already ended ${record.state}`);
    }
    await this.pool.cancelJob(id);
    return this.get(id);
  }

  /**
   * Serves the job's events as `text/event-stream`: its state at once, then each change (one `progress` per
   * denoising step), then exactly one `completed`, `failed` or `cancelled`, and the stream ends. A job already
   * ended gets only its final event. A comment line every JOB_EVENTS_HEARTBEAT_MS keeps proxies from closing it.
   */
  async stream(id: string, response: Response): Promise<void> {
    const record = await this.get(id);
    const writer = this.streams.open(response, { heartbeatMs: this.config.jobEventsHeartbeatMs });
    if (FINAL_STATES.includes(record.state)) {
      writer.send(record.state, JSON.stringify(record));
      writer.end();
      return;
    }
    writer.send('state', JSON.stringify(record));
    // The bus's job events, under the names this stream has always used (`progress`, not `job.progress`).
    const unsubscribe = this.bus.subscribe(
      (event) => {
        const { job } = event as JobBusEvent;
        if (job.id !== id) return;
        writer.send(event.type.slice('job.'.length), JSON.stringify(dataOf(event as JobBusEvent)));
        if (FINAL_STATES.includes(job.state)) writer.end();
      },
      ['job.'],
    );
    writer.onClose(unsubscribe);
  }
}

/** A queued job's record carries its place now. */
function render(job: JobSnapshot, positions: ReadonlyMap<string, number>): JobRecord {
  return toJobRecord(job, job.state === 'queued' ? (positions.get(job.id) ?? null) : null);
}

function dataOf(event: JobBusEvent): unknown {
  switch (event.type) {
    case 'job.progress':
      return { id: event.job.id, step: event.step, total_steps: event.total_steps };
    case 'job.switching':
      return { id: event.job.id, from_mode: event.from_mode, to_mode: event.to_mode };
    default:
      return toJobRecord(event.job);
  }
}
