import type { Logger } from '@nestjs/common';

import { call, drive, isPromise, type QueueBackend, type QueuedJob } from './queue-backend.js';

/**
 * QUEUE_TIMEOUT_MS for the engine: one timer, at the backend's next deadline (one timeout for all, so the oldest
 * waiting job's). When it fires, every waiting job past its deadline leaves the queue, oldest first, and is handed
 * to `expired` with how long it waited; then the timer waits for the next deadline.
 */
export class QueueExpiry {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly backend: QueueBackend,
    private readonly timeoutMs: number,
    private readonly expired: (job: QueuedJob, waitedMs: number) => void,
    private readonly logger: Logger,
  ) {}

  /** A job was admitted at `submittedAt`: armed for it unless the timer already waits (for an older job). */
  admitted(submittedAt: number): void {
    if (this.timer === undefined && !this.stopped) this.arm(submittedAt + this.timeoutMs);
  }

  /** The gateway stops: no job expires any more (the engine answers the waiting ones itself). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** `at`: ms since the epoch. */
  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.due(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private due(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const done = drive(this.expireSteps());
    if (isPromise(done)) done.catch((error: unknown) => this.logger.error(`queue timeouts: ${String(error)}`));
  }

  private *expireSteps(): Generator<unknown, void, unknown> {
    const now = Date.now();
    const expired = yield* call(this.backend.expire(now));
    for (const job of expired) this.expired(job, now - job.submittedAt);
    const next = yield* call(this.backend.nextExpiry());
    // A job submitted by a listener of an expiry meanwhile may have armed one already: this one is the earliest.
    if (next !== undefined && !this.stopped) this.arm(next);
  }
}
