import { Fifo } from './fifo.js';
import { JobIndex } from './job-index.js';
import type { SchedulableJob, Scheduler, SchedulingContext } from './scheduler.js';

const NONE: ReadonlySet<string> = new Set();

interface Entry {
  readonly job: SchedulableJob;
  waiting: boolean;
}

/**
 * A FIFO of entries that leaves removed ones in place (marked not waiting) and skips them at the head, so that
 * add, remove and taking the head are O(1) amortized.
 */
const leftTheLane = (entry: Entry): boolean => !entry.waiting;

class Lane extends Fifo<Entry> {
  /** The oldest entry still waiting. */
  oldest(): Entry | undefined {
    return this.skip(leftTheLane);
  }
}

/**
 * Groups generation jobs by mode with a bound on how long any job can be passed over (docs/SCHEDULING.md).
 *
 * - The oldest waiting job's FIFO turn has come. Once it has waited `maxDelayMs` past that moment it runs next.
 * - A mode switch or a custom job is a barrier: it runs only as the oldest waiting job, and nothing submitted
 *   after it runs before it. The jobs before the first barrier are the eligible ones.
 * - Otherwise the oldest eligible job in the active mode runs (no switch needed), else the oldest eligible job of a
 *   mode the host holds (`resident`), else the oldest job — unless its mode is better left to another host
 *   (`avoid`): then the oldest eligible job of any other mode, or none (the host waits).
 *
 * `maxDelayMs = 0` is strict FIFO. Every decision is O(1) amortized whatever the queue's depth;
 * `plan()` is O(n).
 */
export class ModeAwareScheduler implements Scheduler {
  private readonly maxDelayMs: number;
  private readonly all = new Lane();
  private readonly barriers = new Lane();
  private readonly byMode = new Map<string, Lane>();
  private readonly byId = new JobIndex<Entry>();
  private count = 0;
  /** The current oldest entry, and when it became the oldest (its FIFO turn). */
  private head: Entry | undefined;
  private headTurnAt = 0;
  /** The latest time the scheduler has heard of: when a removal makes a job the oldest, its turn came no earlier. */
  private lastNow = Number.NEGATIVE_INFINITY;
  private lastSeq = Number.NEGATIVE_INFINITY;

  constructor({ maxDelayMs }: { maxDelayMs: number }) {
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) {
      throw new RangeError(`maxDelayMs must be a finite number >= 0, got ${maxDelayMs}`);
    }
    this.maxDelayMs = maxDelayMs;
  }

  get size(): number {
    return this.count;
  }

  add(job: SchedulableJob): void {
    const entry: Entry = { job, waiting: true };
    if (!this.byId.add(job.id, entry)) throw new Error(`job ${job.id} is already waiting`);
    // Submission order is what "older" and "after a barrier" mean: the lanes rely on it.
    if (job.seq <= this.lastSeq) {
      this.byId.take(job.id);
      throw new RangeError(`job ${job.id} (seq ${job.seq}) added after seq ${this.lastSeq}`);
    }
    this.lastSeq = job.seq;
    this.all.push(entry);
    if (job.kind !== 'generation') this.barriers.push(entry);
    else if (job.mode !== undefined) this.laneOf(job.mode).push(entry);
    this.count += 1;
    this.lastNow = Math.max(this.lastNow, job.submittedAt);
    if (this.head === undefined) this.advanceHead(job.submittedAt);
  }

  get(id: string): SchedulableJob | undefined {
    return this.byId.get(id)?.job;
  }

  *waiting(): Iterable<SchedulableJob> {
    for (const entry of this.byId.values()) yield entry.job;
  }

  oldest(): SchedulableJob | undefined {
    return this.head?.job;
  }

  remove(id: string): boolean {
    const entry = this.byId.take(id);
    if (!entry) return false;
    this.leave(entry, this.lastNow);
    return true;
  }

  next(context: SchedulingContext): SchedulableJob | undefined {
    this.lastNow = Math.max(this.lastNow, context.now);
    const entry = this.choose(context);
    if (!entry) return undefined;
    this.take(entry, context.now);
    return entry.job;
  }

  peek(context: SchedulingContext): SchedulableJob | undefined {
    return this.choose(context)?.job;
  }

  oldestOf(mode: string): SchedulableJob | undefined {
    return this.byMode.get(mode)?.oldest()?.job;
  }

  plan(context: SchedulingContext): readonly SchedulableJob[] {
    const copy = new ModeAwareScheduler({ maxDelayMs: this.maxDelayMs });
    this.copyInto(copy);
    const order: SchedulableJob[] = [];
    let activeMode = context.activeMode;
    for (
      let job = copy.next({ activeMode, now: context.now });
      job;
      job = copy.next({ activeMode, now: context.now })
    ) {
      order.push(job);
      if (job.kind !== 'custom' && job.mode !== undefined) activeMode = job.mode;
    }
    return order;
  }

  nextDeadline(context: SchedulingContext): number | undefined {
    const head = this.head;
    if (!head || this.overdue(context.now)) return undefined;
    // Time only matters while the choice passes over the oldest job: once it is overdue, it is chosen instead.
    if (this.choose(context) === head) return undefined;
    return Math.max(0, this.headTurnAt + this.maxDelayMs - context.now);
  }

  private choose(context: SchedulingContext): Entry | undefined {
    const head = this.head;
    if (!head) return undefined;
    // Only custom jobs are bound to a host, and they are barriers: another host waits for that one's turn.
    if (head.job.host !== undefined && context.host !== undefined && head.job.host !== context.host) return undefined;
    if (head.job.kind !== 'generation' || this.overdue(context.now)) return head;
    const barrier = this.barriers.oldest();
    const eligible = (entry: Entry | undefined): entry is Entry =>
      entry !== undefined && (!barrier || entry.job.seq < barrier.job.seq);
    // No load at all, then a load from what the host holds, then the oldest job not better left to another host.
    const active = context.activeMode === undefined ? undefined : this.byMode.get(context.activeMode)?.oldest();
    if (eligible(active)) return active;
    const resident = this.oldestAmong(context.resident ?? NONE, eligible);
    if (resident) return resident;
    const avoid = context.avoid ?? NONE;
    if (head.job.mode === undefined || !avoid.has(head.job.mode)) return head;
    let best: Entry | undefined;
    for (const [mode, lane] of this.byMode) {
      if (avoid.has(mode)) continue;
      const oldest = lane.oldest();
      if (eligible(oldest) && (!best || oldest.job.seq < best.job.seq)) best = oldest;
    }
    return best;
  }

  /** The oldest eligible job of any of `modes`. */
  private oldestAmong(
    modes: ReadonlySet<string>,
    eligible: (entry: Entry | undefined) => entry is Entry,
  ): Entry | undefined {
    let best: Entry | undefined;
    for (const mode of modes) {
      const oldest = this.byMode.get(mode)?.oldest();
      if (eligible(oldest) && (!best || oldest.job.seq < best.job.seq)) best = oldest;
    }
    return best;
  }

  private overdue(now: number): boolean {
    return now - this.headTurnAt >= this.maxDelayMs;
  }

  private take(entry: Entry, now: number): void {
    this.byId.take(entry.job.id);
    this.leave(entry, now);
  }

  /** The entry, already out of `byId`, leaves the lanes. */
  private leave(entry: Entry, now: number): void {
    entry.waiting = false;
    this.count -= 1;
    if (entry.job.kind === 'generation' && entry.job.mode !== undefined) {
      const lane = this.byMode.get(entry.job.mode);
      if (lane && !lane.oldest()) this.byMode.delete(entry.job.mode);
    } else if (entry.job.kind !== 'generation') {
      // Moves the lane's head past the barriers that left: nothing else does while no generation waits, and
      // every barrier ever queued would stay in it.
      this.barriers.oldest();
    }
    if (entry === this.head) this.advanceHead(now);
  }

  private advanceHead(now: number): void {
    this.head = this.all.oldest();
    this.headTurnAt = Math.max(now, this.head?.job.submittedAt ?? now);
  }

  private laneOf(mode: string): Lane {
    let lane = this.byMode.get(mode);
    if (!lane) {
      lane = new Lane();
      this.byMode.set(mode, lane);
    }
    return lane;
  }

  /** The waiting jobs, in submission order, with the oldest one's turn kept. */
  private copyInto(copy: ModeAwareScheduler): void {
    for (const entry of this.byId.values()) copy.add(entry.job);
    copy.lastNow = this.lastNow;
    copy.headTurnAt = this.headTurnAt;
  }
}
