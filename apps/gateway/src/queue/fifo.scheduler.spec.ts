import { FifoScheduler } from './fifo.scheduler.js';
import type { SchedulableJob, Scheduler } from './scheduler.js';

const job = (seq: number, mode: string): SchedulableJob => ({
  id: `job-${seq}`,
  kind: 'generation',
  mode,
  seq,
  submittedAt: seq,
});

describe('FifoScheduler', () => {
  it('runs in submission order whatever mode is active, and plans the same order', () => {
    const scheduler: Scheduler = new FifoScheduler();
    for (const [seq, mode] of [
      [1, 'a'],
      [2, 'b'],
      [3, 'a'],
    ] as const)
      scheduler.add(job(seq, mode));
    const context = { activeMode: 'a', now: 10 };
    expect(scheduler.plan(context).map((j) => j.seq)).toEqual([1, 2, 3]);
    expect(scheduler.remove('job-2')).toBe(true);
    expect(scheduler.remove('job-2')).toBe(false);
    expect(scheduler.next(context)?.seq).toBe(1);
    expect(scheduler.next(context)?.seq).toBe(3);
    expect(scheduler.next(context)).toBeUndefined();
    expect(scheduler.size).toBe(0);
    expect(scheduler.nextDeadline(context)).toBeUndefined();
  });
});
