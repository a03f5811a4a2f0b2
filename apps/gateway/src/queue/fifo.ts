/**
 * Appended at the tail, taken from the head, O(1) amortized: no Array.shift or splice on the engine's hot paths.
 * Not a Map: one that keeps losing its oldest entries keeps their holes until it rehashes, and every walk from its
 * head steps over them. A slot taken is emptied at once: a job that left must not stay reachable (its whole graph
 * kept alive by the garbage collector) until the next compaction.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  get size(): number {
    return this.items.length - this.head;
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    this.compact();
    return item;
  }

  /** Takes the items at the head that `gone` says have left; returns the first that has not. */
  skip(gone: (item: T) => boolean): T | undefined {
    const { items } = this;
    let { head } = this;
    for (let item = items[head]; item !== undefined && gone(item); item = items[head]) {
      items[head] = undefined;
      head += 1;
    }
    this.head = head;
    this.compact();
    return this.items[this.head];
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
