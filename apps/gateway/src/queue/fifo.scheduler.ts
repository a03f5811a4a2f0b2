import type { SchedulableJob, Scheduler } from './scheduler.js';

/** Strict arrival order, whatever the active mode: SCHEDULER_MAX_DELAY_MS=0's behaviour, and the bench's baseline. */
export class FifoScheduler implements Scheduler {
  private readonly waiting: SchedulableJob[] = [];

  get size(): number {
    return this.waiting.length;
  }

  add(job: SchedulableJob): void {
    this.waiting.push(job);
  }

  remove(id: string): boolean {
    const index = this.waiting.findIndex((job) => job.id === id);
    if (index < 0) return false;
    this.waiting.splice(index, 1);
    return true;
  }

  next(): SchedulableJob | undefined {
    return this.waiting.shift();
  }

  plan(): readonly SchedulableJob[] {
    return [...this.waiting];
  }

  nextDeadline(): number | undefined {
    return undefined;
  }
}
