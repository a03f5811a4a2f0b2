/** What the scheduler knows of a waiting job: plain data, nothing of the job's payload. */
export interface SchedulableJob {
  readonly id: string;
  readonly kind: 'generation' | 'mode-switch' | 'custom';
  /** The mode a generation or switch runs in; undefined for custom jobs. */
  readonly mode: string | undefined;
  /** Monotonic submission order (1, 2, 3 ...). */
  readonly seq: number;
  /** When it was submitted, ms (the engine's clock). */
  readonly submittedAt: number;
}

/** The device's state as the scheduler needs it to choose. */
export interface SchedulingContext {
  /** The mode active on the model host (what a job of this mode runs in without a switch). */
  readonly activeMode: string | undefined;
  /** Now, ms, same clock as submittedAt. */
  readonly now: number;
}

export interface Scheduler {
  readonly size: number;
  add(job: SchedulableJob): void;
  /** Drops a waiting job (cancelled or expired); false when it is not waiting. */
  remove(id: string): boolean;
  /** Chooses the job to run now and removes it; undefined when none waits. */
  next(context: SchedulingContext): SchedulableJob | undefined;
  /**
   * The order in which the waiting jobs would run if nothing else arrived, from the context's state
   * (each chosen job's mode becoming the active one for the next choice): positions and
   * "will switch after N pending jobs" come from this.
   */
  plan(context: SchedulingContext): readonly SchedulableJob[];
  /** ms until the scheduler's choice could change by time alone (a job becomes overdue); undefined: never. */
  nextDeadline(context: SchedulingContext): number | undefined;
}
