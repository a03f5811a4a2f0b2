import { JobIndex } from './job-index.js';
import type { SchedulableJob, Scheduler, SchedulingContext } from './scheduler.js';

/** Arrival order, nothing else: the baseline the mode-aware scheduler is measured against. */
export class FifoScheduler implements Scheduler {
  private items: (SchedulableJob | undefined)[] = [];
  private start = 0;
  private readonly index = new JobIndex<number>();

  get size(): number {
    return this.index.size;
  }

  add(job: SchedulableJob): void {
    if (!this.index.add(job.id, this.items.length)) throw new Error(`job ${job.id} is already waiting`);
    this.items.push(job);
  }

  get(id: string): SchedulableJob | undefined {
    const at = this.index.get(id);
    return at === undefined ? undefined : this.items[at];
  }

  waiting(): Iterable<SchedulableJob> {
    return this.plan();
  }

  remove(id: string): boolean {
    const at = this.index.take(id);
    if (at === undefined) return false;
    this.items[at] = undefined;
    return true;
  }

  next(context?: SchedulingContext): SchedulableJob | undefined {
    const job = this.peek(context);
    if (!job) return undefined;
    this.items[this.start] = undefined;
    this.start += 1;
    this.index.delete(job.id);
    this.compact();
    return job;
  }

  oldest(): SchedulableJob | undefined {
    while (this.start < this.items.length && this.items[this.start] === undefined) this.start += 1;
    this.compact();
    return this.items[this.start];
  }

  /** The oldest job, unless it is bound to another host: then that host's turn is awaited (strict order). */
  peek(context?: SchedulingContext): SchedulableJob | undefined {
    const job = this.oldest();
    if (!job) return undefined;
    if (job.host !== undefined && context?.host !== undefined && job.host !== context.host) return undefined;
    return job;
  }

  /** Strict FIFO does not group by mode. */
  oldestOf(): SchedulableJob | undefined {
    return undefined;
  }

  plan(): readonly SchedulableJob[] {
    return this.items.slice(this.start).filter((job): job is SchedulableJob => job !== undefined);
  }

  nextDeadline(): number | undefined {
    return undefined;
  }

  /** Drops the consumed prefix once it is most of the array, so that the positions in `index` stay valid. */
  private compact(): void {
    if (this.start <= 1024 || this.start * 2 <= this.items.length) return;
    this.items = this.items.slice(this.start);
    for (const [id, at] of this.index.entries()) this.index.set(id, at - this.start);
    this.start = 0;
  }
}
