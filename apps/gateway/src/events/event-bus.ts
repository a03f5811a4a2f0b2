import { matchesTypes, type GatewayEvent } from './event.types.js';

/** An event as the bus numbered it (kept for replay). `id` grows by one per event, for as long as the gateway runs. */
export interface Published<E extends GatewayEvent = GatewayEvent> {
  readonly id: number;
  readonly event: E;
}

/** Told each event and its id: no object is made per event to carry the two (a job's events pass here per job). */
export type BusListener = (event: GatewayEvent, id: number) => void;

/** What a reconnecting client gets: what it missed, or a reset when that is no longer known. */
export type Replay =
  | { readonly kind: 'events'; readonly events: readonly Published[] }
  | {
      readonly kind: 'reset';
      /** The newest id now: a client that re-reads resumes after it. */
      readonly lastId: number;
      /** The oldest id still buffered (lastId + 1 while the buffer is empty). */
      readonly oldestId: number;
    };

export interface EventBusOptions {
  /** How many of the newest events are kept for replay (EVENTS_BUFFER). */
  readonly capacity?: number;
  /**
   * The first event's id. The module starts at the boot time in ms, so an id a client kept from an earlier run of
   * the gateway is older than anything buffered now (a reset), never mistaken for one of this run's events.
   */
  readonly firstId?: number;
}

export const DEFAULT_EVENTS_BUFFER = 4096;

interface Subscriber {
  readonly listener: BusListener;
  readonly types: readonly string[] | undefined;
  /** False once unsubscribed: a publish under way skips it. */
  active: boolean;
}

/**
 * The gateway's one typed event bus (DESIGN §6): every producer publishes here, every consumer subscribes. Delivery
 * is synchronous, in publish order, so a consumer sees the same order as the stream; a subscriber that throws is
 * isolated (it harms neither the producer nor the others). The newest `capacity` events are kept in a ring for
 * clients that reconnect with Last-Event-ID, while such a client may come back (see `keepForReplay`).
 */
export class EventBus {
  private readonly capacity: number;
  private readonly ring: (Published | undefined)[];
  /** Where the next event goes in the ring. */
  private head = 0;
  private size = 0;
  private nextId: number;
  /**
   * Insertion-ordered, so subscribe and unsubscribe are O(1) (thousands of streams opening or closing at once cost
   * no copy each).
   */
  private readonly subscribers = new Set<Subscriber>();
  /**
   * Each event type's subscribers, in subscription order, made at the type's first publish after the set changed:
   * a publish walks only those its type selects, with no prefix compared (a job's events pass here several times
   * each). A publish walks the list it started with: one subscribed meanwhile waits for the next event, one
   * unsubscribed meanwhile (a per-job stream does on its final event) is skipped.
   */
  private readonly byType = new Map<string, readonly Subscriber[]>();
  /** Open streams that may reconnect with a Last-Event-ID. */
  private replayReaders = 0;
  /** The ring records events up to this id after the last such stream closed (its reconnect may need them). */
  private recordBefore = 0;

  constructor(options: EventBusOptions = {}) {
    this.capacity = Math.max(1, options.capacity ?? DEFAULT_EVENTS_BUFFER);
    this.ring = new Array<Published | undefined>(this.capacity);
    this.nextId = options.firstId ?? 1;
  }

  /** The id of the newest event; one less than the first id while none was published. */
  get lastId(): number {
    return this.nextId - 1;
  }

  /**
   * A stream whose client may reconnect with a Last-Event-ID holds the ring open: events are kept while one is
   * open, and for `capacity` events after the last one closed, what a reconnect within the buffer would get
   * anyway. With no such stream the ring is empty and every replay a reset. A kept event stays alive across
   * thousands of jobs, so the garbage collector copies it into its old generation: unkept, a gateway nobody
   * watches pays nothing for replay (it was half the job engine's cost per job). Returns the release.
   */
  keepForReplay(): () => void {
    this.replayReaders += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.replayReaders -= 1;
      if (this.replayReaders === 0) this.recordBefore = this.nextId + this.capacity;
    };
  }

  /** Numbers the event, keeps it for replay (see keepForReplay) and hands it to every subscriber it selects. */
  publish(event: GatewayEvent): number {
    const id = this.nextId;
    if (this.replayReaders > 0 || id < this.recordBefore) this.record({ id, event });
    else if (this.size > 0) this.forget();
    this.nextId += 1;
    for (const subscriber of this.subscribersOf(event.type)) {
      if (!subscriber.active) continue;
      try {
        subscriber.listener(event, id);
      } catch {
        // One broken subscriber must not stop the producer (a job, a load being recorded) or the others.
      }
    }
    return id;
  }

  private record(published: Published): void {
    this.ring[this.head] = published;
    this.head = (this.head + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** Nothing kept is whole any more (later events went unrecorded): a replay from it would miss them. */
  private forget(): void {
    this.ring.fill(undefined);
    this.size = 0;
  }

  /**
   * Calls `listener` for every event from now on whose type starts with one of `types` (all when omitted); the
   * returned function unsubscribes.
   */
  subscribe(listener: BusListener, types?: readonly string[]): () => void {
    const subscriber: Subscriber = { listener, types, active: true };
    this.subscribers.add(subscriber);
    this.byType.clear();
    return () => {
      if (!subscriber.active) return;
      subscriber.active = false;
      this.subscribers.delete(subscriber);
      this.byType.clear();
    };
  }

  private subscribersOf(type: string): readonly Subscriber[] {
    let list = this.byType.get(type);
    if (list === undefined) {
      list = [...this.subscribers].filter((subscriber) => matchesTypes(type, subscriber.types));
      this.byType.set(type, list);
    }
    return list;
  }

  /**
   * The buffered events after `lastId` that `types` selects, oldest first; a reset when an event after `lastId`
   * has already left the buffer, or when `lastId` is not an id this bus gave yet (another run of the gateway).
   * A caller that replays and then subscribes in the same synchronous turn misses nothing and repeats nothing.
   */
  since(lastId: number, types?: readonly string[]): Replay {
    const oldestId = this.nextId - this.size;
    if (!Number.isSafeInteger(lastId) || lastId + 1 < oldestId || lastId > this.lastId) {
      return { kind: 'reset', lastId: this.lastId, oldestId };
    }
    const events: Published[] = [];
    const start = (this.head - this.size + this.capacity) % this.capacity;
    for (let i = lastId + 1 - oldestId; i < this.size; i += 1) {
      const published = this.ring[(start + i) % this.capacity] as Published;
      if (matchesTypes(published.event.type, types)) events.push(published);
    }
    return { kind: 'events', events };
  }
}
