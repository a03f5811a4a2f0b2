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
  /** A custom job bound to one model host: only that host may take it. Undefined: any host. */
  readonly host?: string | undefined;
}

/** The state of the model host that asks for work, as the scheduler needs it to choose. */
export interface SchedulingContext {
  /** The mode active on the model host (what a job of this mode runs in without a switch). */
  readonly activeMode: string | undefined;
  /** Now, ms, same clock as submittedAt. */
  readonly now: number;
  /** The host's id: jobs bound to another host are not its to take. Undefined: any job. */
  readonly host?: string;
  /** Other modes the host holds (on the device or in its RAM tier): their jobs need no load from disk. */
  readonly resident?: ReadonlySet<string>;
  /**
   * Modes better left to another host (active there, busy now, and not yet waited on long enough to be worth a
   * second copy): their jobs are not chosen unless overdue. Ignored by strict FIFO.
   */
  readonly avoid?: ReadonlySet<string>;
}

export interface Scheduler {
  readonly size: number;
  add(job: SchedulableJob): void;
  /** The waiting job with this id; undefined once it left (run, cancelled or expired) or never came. */
  get(id: string): SchedulableJob | undefined;
  /** Every waiting job, in submission order. */
  waiting(): Iterable<SchedulableJob>;
  /** The waiting job submitted first, whichever host may take it (QUEUE_TIMEOUT_MS runs out in this order). */
  oldest(): SchedulableJob | undefined;
  /** Drops a waiting job (cancelled or expired); false when it is not waiting. */
  remove(id: string): boolean;
  /** Chooses the job to run now and removes it; undefined when none waits (or none is the context's to take). */
  next(context: SchedulingContext): SchedulableJob | undefined;
  /** What `next` would choose, left waiting. */
  peek(context: SchedulingContext): SchedulableJob | undefined;
  /** The oldest waiting generation of `mode` (undefined: none, or a scheduler that does not group by mode). */
  oldestOf(mode: string): SchedulableJob | undefined;
  /**
   * The order in which the waiting jobs would run if nothing else arrived, from the context's state
   * (each chosen job's mode becoming the active one for the next choice): positions and
   * "will switch after N pending jobs" come from this.
   */
  plan(context: SchedulingContext): readonly SchedulableJob[];
  /** ms until the scheduler's choice could change by time alone (a job becomes overdue); undefined: never. */
  nextDeadline(context: SchedulingContext): number | undefined;
}
