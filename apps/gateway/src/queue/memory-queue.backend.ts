import { QueueFullError } from '../errors/domain.errors.js';
import { batchPartners } from './batching.js';
import { FifoScheduler } from './fifo.scheduler.js';
import { ModeAwareScheduler } from './mode-aware.scheduler.js';
import type { JobStore } from './job.store.js';
import type { ClaimContext, ClaimOptions, Enqueued, EnqueueRequest, QueueBackend, QueuedJob } from './queue-backend.js';
import type { Scheduler, SchedulingContext } from './scheduler.js';

/** Told to a client whose job found the queue full. */
export const RETRY_AFTER_SECONDS = 5;

const NOTHING: readonly QueuedJob[] = Object.freeze([]);

export interface MemoryQueueOptions {
  readonly queueMax: number;
  readonly queueTimeoutMs: number;
  /** SCHEDULER_MAX_DELAY_MS: 0 is strict FIFO. */
  readonly schedulerMaxDelayMs: number;
}

/**
 * The queue of one gateway, in its memory (the default backend): the waiting jobs in their Scheduler (mode-aware,
 * or FIFO at SCHEDULER_MAX_DELAY_MS=0), which also finds them by id and knows the oldest (one QUEUE_TIMEOUT_MS for
 * all, so deadlines come in submission order), and the JobStore. Every answer is a plain value (`answersAtOnce`):
 * the engine runs it without a microtask.
 */
export class MemoryQueueBackend implements QueueBackend {
  readonly answersAtOnce = true;
  private readonly scheduler: Scheduler;
  private seq = 0;
  private readonly payloadOf = (id: string) => this.waiting(id)?.payload;

  constructor(
    private readonly options: MemoryQueueOptions,
    readonly records: JobStore,
  ) {
    this.scheduler =
      options.schedulerMaxDelayMs === 0
        ? new FifoScheduler()
        : new ModeAwareScheduler({ maxDelayMs: options.schedulerMaxDelayMs });
  }

  enqueue({ id, payload, seed, owner, plan }: EnqueueRequest): Enqueued {
    if (this.scheduler.size >= this.options.queueMax) {
      throw new QueueFullError(this.options.queueMax, RETRY_AFTER_SECONDS);
    }
    const mode = payload.kind === 'custom' ? undefined : payload.mode;
    const { created_ms: submittedAt } = this.records.create(payload.kind, mode, seed, id, owner);
    const job: QueuedJob = {
      id,
      kind: payload.kind,
      mode,
      seq: ++this.seq,
      submittedAt,
      host: payload.kind === 'custom' ? payload.host : undefined,
      payload,
    };
    this.scheduler.add(job);
    // A barrier (a switch, a custom job) runs only as the oldest waiting job, so every job waiting now goes first:
    // O(1), where the plan a generation's position needs is O(n) (a queue filled with custom jobs stays linear).
    const ahead =
      job.kind === 'generation' && plan
        ? this.scheduler.plan(plan).findIndex((waiting) => waiting.id === id)
        : this.scheduler.size - 1;
    return { job, ahead };
  }

  claim(context: ClaimContext, { onlyIfHeld, maxBatch }: ClaimOptions): readonly QueuedJob[] {
    const chosen = this.scheduler.peek(context) as QueuedJob | undefined;
    if (!chosen) return NOTHING;
    if (onlyIfHeld && chosen.mode !== undefined && !onlyIfHeld.has(chosen.mode)) return NOTHING;
    this.scheduler.remove(chosen.id);
    if (chosen.kind !== 'generation' || maxBatch <= 1) return [chosen];
    const plan = this.scheduler.plan({ activeMode: chosen.mode, now: context.now });
    const partners = batchPartners(chosen.payload, plan, this.payloadOf, maxBatch);
    if (partners.length === 0) return [chosen];
    const taken = [chosen];
    for (const id of partners) {
      const partner = this.waiting(id);
      if (partner) {
        this.scheduler.remove(partner.id);
        taken.push(partner);
      }
    }
    return taken;
  }

  cancel(id: string): QueuedJob | undefined {
    const job = this.waiting(id);
    if (job) this.scheduler.remove(id);
    return job;
  }

  expire(now: number): readonly QueuedJob[] {
    const expired: QueuedJob[] = [];
    for (let oldest = this.oldest(); oldest; oldest = this.oldest()) {
      if (oldest.submittedAt + this.options.queueTimeoutMs > now) break;
      this.scheduler.remove(oldest.id);
      expired.push(oldest);
    }
    return expired;
  }

  nextExpiry(): number | undefined {
    const oldest = this.oldest();
    return oldest && oldest.submittedAt + this.options.queueTimeoutMs;
  }

  plan(context: SchedulingContext): readonly QueuedJob[] {
    return this.scheduler.plan(context) as readonly QueuedJob[];
  }

  size(): number {
    return this.scheduler.size;
  }

  waitingFor(host: string): number {
    let count = 0;
    for (const job of this.scheduler.waiting()) if (job.host === host) count += 1;
    return count;
  }

  nextDeadline(context: ClaimContext): number | undefined {
    return this.scheduler.size === 0 ? undefined : this.scheduler.nextDeadline(context);
  }

  oldestOf(mode: string): QueuedJob | undefined {
    return this.scheduler.oldestOf(mode) as QueuedJob | undefined;
  }

  close(): readonly QueuedJob[] {
    const all = [...this.scheduler.waiting()] as QueuedJob[];
    for (const job of all) this.scheduler.remove(job.id);
    return all;
  }

  /** The scheduler holds the jobs this backend added: QueuedJobs. */
  private waiting(id: string): QueuedJob | undefined {
    return this.scheduler.get(id) as QueuedJob | undefined;
  }

  private oldest(): QueuedJob | undefined {
    return this.scheduler.oldest() as QueuedJob | undefined;
  }
}
