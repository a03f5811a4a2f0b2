/**
 * A map by job id for the engine's waiting jobs, whose count climbs and falls with every wave of submissions: a
 * job that leaves is marked gone, and the marks are swept in one pass once they outnumber the jobs still there
 * (and 1,024). Iteration is in insertion order, as a Map's, and skips what is gone.
 *
 * Why not a Map that deletes: V8 rehashes a Map's table into a new one each time its count doubles, and each time a
 * delete leaves it a quarter full; once the table is in the old generation every new table is allocated there too,
 * and each one it replaces still points at every job it held. Those dead tables are roots to the scavenger until the
 * next full collection, so the jobs in them, and all their promises and payloads, are copied and promoted instead of
 * freed. With the engine's three such maps (the handles, the backend's waiting jobs, the scheduler's) that doubled
 * the bytes each scavenge copied and cost over 1 µs of every no-op job (docs/BENCHMARKS.md). Here the table is
 * replaced once per sweep, not several times per wave.
 */
export class JobIndex<T> {
  private map = new Map<string, T | undefined>();
  /** Keys marked gone (their value undefined), not yet swept. */
  private gone = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  get(id: string): T | undefined {
    return this.map.get(id);
  }

  has(id: string): boolean {
    return this.map.get(id) !== undefined;
  }

  set(id: string, value: T): void {
    const had = this.map.get(id);
    if (had === undefined) {
      // A key marked gone keeps its old place in the order: set anew, it goes last, as in a Map.
      if (this.map.has(id)) {
        this.map.delete(id);
        this.gone -= 1;
      }
      this.live += 1;
    }
    this.map.set(id, value);
  }

  delete(id: string): boolean {
    if (this.map.get(id) === undefined) return false;
    this.map.set(id, undefined);
    this.live -= 1;
    this.gone += 1;
    if (this.gone > 1024 && this.gone > this.live) this.sweep();
    return true;
  }

  *values(): IterableIterator<T> {
    for (const value of this.map.values()) if (value !== undefined) yield value;
  }

  *entries(): IterableIterator<[string, T]> {
    for (const [id, value] of this.map) if (value !== undefined) yield [id, value];
  }

  private sweep(): void {
    const map = new Map<string, T | undefined>();
    for (const [id, value] of this.map) if (value !== undefined) map.set(id, value);
    this.map = map;
    this.gone = 0;
  }
}
