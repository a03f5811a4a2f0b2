import { JobCancelledError } from '../errors/domain.errors.js';
import { toHttpError } from '../errors/http-error.table.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import type { JobImage } from './job-record.types.js';
import type { GenerationJob, Job, JobHandle, JobHandler } from './job.types.js';
import type { WorkItem, WorkResult } from './model-host.worker.js';
import type { JobRecords } from './queue-backend.js';

/** What an Entry reports to: the engine that holds it (WorkerPool). */
export interface EntryOwner {
  readonly store: JobRecords;
  cancelEntry(entry: Entry): void;
}

/** One function for every job's "nobody asked for the result" catch, not a closure per job. */
export const ignore = (): void => undefined;

/**
 * A job this engine holds, from its submission (or its claim, for a job another gateway submitted) to its end:
 * what its worker is handed (a WorkItem) and what its caller holds (a JobHandle), one object for both. What waits
 * in the queue is the backend's QueuedJob, plain data.
 */
export class Entry implements WorkItem, JobHandle<unknown> {
  /** It ran on a model host that died under it, and waits to run once more on another. */
  retried = false;
  /** Jobs ahead of it when it was submitted (see JobHandle). */
  ahead = 0;
  /** Waiting in the queue backend (not yet claimed, cancelled or expired). */
  queued = true;
  /** Its caller cancelled it (not a shutdown, not the model host): the job ends `cancelled`. */
  cancelled = false;
  /** An abort was asked for; the controller itself is made only when someone asks for the signal. */
  aborted = false;
  private controller: AbortController | undefined;
  private readonly promise: Promise<unknown>;
  private settle!: (value: unknown) => void;
  private fail!: (error: unknown) => void;

  constructor(
    readonly id: string,
    readonly job: Job,
    readonly handler: JobHandler | undefined,
    private readonly owner: EntryOwner,
  ) {
    this.promise = new Promise<unknown>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    // A caller that never asks for the result must not turn a failure into an unhandled rejection.
    this.promise.catch(ignore);
  }

  /** Read from the job (every field an Entry holds, it holds for every waiting job). */
  get mode(): string | undefined {
    return this.job.kind === 'custom' ? undefined : this.job.mode;
  }

  result(): Promise<unknown> {
    return this.promise;
  }

  cancel(): void {
    this.owner.cancelEntry(this);
  }

  /** Aborted when the job is cancelled; most jobs never ask for it, so most never make an AbortController. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }

  resolve({ value, generateMs }: WorkResult): void {
    const { job } = this;
    const image = job.kind === 'generation' ? imageOf(job, value as GeneratedImage) : undefined;
    this.owner.store.finish(this.id, { state: 'completed', generateMs, image });
    this.settle(value);
  }

  reject(error: unknown): void {
    const state = error instanceof JobCancelledError && this.cancelled ? 'cancelled' : 'failed';
    this.owner.store.finish(this.id, { state, error: toHttpError(error).body });
    this.fail(error);
  }
}

function imageOf(job: GenerationJob, image: GeneratedImage): JobImage {
  return { png: image.png, mode: job.mode, seed: image.seed, superres: image.superresApplied };
}
