/** What a key that left holds until the next sweep. */
const GONE: unique symbol = Symbol('gone');

/**
 * From this many jobs up a key that leaves is deleted outright: a table this large is rebuilt only when a quarter
 * full, a few times over a whole deep queue, where marks would double the table every lookup walks.
 */
const DELETE_FROM = 1024;

/** Marks swept once there are more of them than this, and more than the jobs still there. */
const SWEEP_FROM = 1024;

/**
 * A map by job id for the engine's waiting jobs, whose count climbs and falls with every wave of submissions: a
 * job that leaves a map of up to DELETE_FROM jobs is marked gone, and the marks are swept in one pass (SWEEP_FROM).
 * Iteration is in insertion order, as a Map's, and skips what is gone. Each method looks the key up once, and
 * writes it at most once.
 *
 * Why not a Map that deletes: V8 rehashes a Map's table into a new one each time its count doubles, and each time a
 * delete leaves it a quarter full (several times per wave of 100 jobs); once a table is in the old generation every
 * new one is allocated there too, and each one it replaces still points at every job it held. Those dead tables are
 * roots to the scavenger until the next full collection, so the jobs in them, with their promises and payloads, are
 * copied and promoted instead of freed. Measured on the engine's maps by id (docs/BENCHMARKS.md, "A fifth time"):
 * with V8's default (parallel) collector, the bytes each scavenge copied 6.5 → 2.6 MB, and the bench's no-op jobs
 * in waves 9.1 → 7.6 µs each. Here the table is replaced once per sweep, not several times per wave.
 */
export class JobIndex<T> {
  private map = new Map<string, T | typeof GONE>();
  /** Keys marked gone, not yet swept. */
  private gone = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  get(id: string): T | undefined {
    const value = this.map.get(id);
    return value === GONE ? undefined : value;
  }

  has(id: string): boolean {
    const value = this.map.get(id);
    return value !== undefined && value !== GONE;
  }

  /** Files `value` under `id` unless a value is already there: false then, and nothing changes. */
  add(id: string, value: T): boolean {
    const had = this.map.get(id);
    if (had !== undefined && had !== GONE) return false;
    if (had === GONE) {
      // A key marked gone keeps its old place in the order: set anew, it goes last, as in a Map.
      this.map.delete(id);
      this.gone -= 1;
    }
    this.map.set(id, value);
    this.live += 1;
    return true;
  }

  set(id: string, value: T): void {
    if (!this.add(id, value)) this.map.set(id, value);
  }

  /** Removes the value under `id` and returns it; undefined when there is none. */
  take(id: string): T | undefined {
    const value = this.map.get(id);
    if (value === undefined || value === GONE) return undefined;
    if (this.live > DELETE_FROM) {
      this.map.delete(id);
      this.live -= 1;
      return value;
    }
    this.map.set(id, GONE);
    this.live -= 1;
    this.gone += 1;
    if (this.gone > SWEEP_FROM && this.gone > this.live) this.sweep();
    return value;
  }

  delete(id: string): boolean {
    return this.take(id) !== undefined;
  }

  *values(): IterableIterator<T> {
    for (const value of this.map.values()) if (value !== GONE) yield value;
  }

  *entries(): IterableIterator<[string, T]> {
    for (const [id, value] of this.map) if (value !== GONE) yield [id, value];
  }

  private sweep(): void {
    const map = new Map<string, T | typeof GONE>();
    for (const [id, value] of this.map) if (value !== GONE) map.set(id, value);
    this.map = map;
    this.gone = 0;
  }
}
