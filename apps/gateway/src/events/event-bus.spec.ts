import { EventBus, type Published } from './event-bus.js';
import type { GatewayEvent } from './event.types.js';

const state = (n: number): GatewayEvent => ({ type: 'host.state', host: 'h', state: 'serving', reason: String(n) });
const memory = (): GatewayEvent => ({
  type: 'memory',
  host: 'h',
  memory: {
    device: 'cpu',
    deviceName: 'cpu',
    totalBytes: 1,
    usedBytes: 0,
    availableBytes: 1,
    models: [],
    reserveBytes: 0,
    ramTierBytes: 0,
    ramTierCapacityBytes: 0,
  },
});
const ids = (events: readonly Published[]): number[] => events.map((published) => published.id);

describe('EventBus', () => {
  it('numbers events one by one from its first id and hands them to subscribers in order', () => {
    const bus = new EventBus({ firstId: 100 });
    const seen: Published[] = [];
    bus.subscribe((event, id) => seen.push({ id, event }));
    expect(bus.lastId).toBe(99);
    bus.publish(state(1));
    bus.publish(state(2));
    expect(ids(seen)).toEqual([100, 101]);
    expect(seen[1]?.event).toEqual(state(2));
    expect(bus.lastId).toBe(101);
  });

  it('delivers to a subscriber only the types its prefixes select', () => {
    const bus = new EventBus();
    const hosts: string[] = [];
    const all: string[] = [];
    bus.subscribe((event) => hosts.push(event.type), ['host.']);
    bus.subscribe((event) => all.push(event.type));
    bus.publish(memory());
    bus.publish(state(1));
    expect(hosts).toEqual(['host.state']);
    expect(all).toEqual(['memory', 'host.state']);
  });

  it('isolates a subscriber that throws, and lets one unsubscribe while an event is delivered', () => {
    const bus = new EventBus();
    const seen: number[] = [];
    bus.subscribe(() => {
      throw new Error('broken');
    });
    const off = bus.subscribe(() => off());
    bus.subscribe((_event, id) => seen.push(id));
    expect(() => bus.publish(state(1))).not.toThrow();
    bus.publish(state(2));
    expect(seen).toEqual([1, 2]);
  });

  it('skips a subscriber another one removed during a publish, and gives one added then only the next event', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    let offLater = (): void => undefined;
    bus.subscribe((_event, id) => {
      seen.push(`first ${id}`);
      offLater();
      if (id === 1) bus.subscribe((_next, next) => seen.push(`added ${next}`));
    });
    offLater = bus.subscribe((_event, id) => seen.push(`later ${id}`));
    bus.publish(state(1));
    bus.publish(state(2));
    expect(seen).toEqual(['first 1', 'first 2', 'added 2']);
  });

  it('subscribes and unsubscribes 50,000 listeners in any order, each unsubscribe removing only its own', () => {
    const bus = new EventBus();
    const counts = new Array<number>(50_000).fill(0);
    const offs = counts.map((_, i) => bus.subscribe(() => (counts[i] = (counts[i] ?? 0) + 1)));
    // Every other one, from the end: the order a burst of closing streams comes in is anyone's.
    for (let i = offs.length - 1; i >= 0; i -= 2) offs[i]?.();
    offs[offs.length - 1]?.();
    bus.publish(state(1));
    expect(counts.filter((count) => count === 1)).toHaveLength(25_000);
    expect(counts.every((count, i) => count === (i % 2 === 0 ? 1 : 0))).toBe(true);
  });

  it('replays what came after a Last-Event-ID, filtered by the same prefixes', () => {
    const bus = new EventBus({ capacity: 10 });
    bus.keepForReplay();
    bus.publish(state(1));
    bus.publish(memory());
    bus.publish(state(3));
    bus.publish(state(4));
    const replay = bus.since(1);
    expect(replay.kind === 'events' && ids(replay.events)).toEqual([2, 3, 4]);
    const filtered = bus.since(1, ['host.']);
    expect(filtered.kind === 'events' && ids(filtered.events)).toEqual([3, 4]);
    const none = bus.since(4);
    expect(none).toEqual({ kind: 'events', events: [] });
  });

  it('keeps only the newest `capacity` events: an id whose successor left the buffer gets a reset', () => {
    const bus = new EventBus({ capacity: 3 });
    bus.keepForReplay();
    for (let n = 1; n <= 7; n += 1) bus.publish(state(n));
    // 5, 6, 7 are kept: after 4 nothing is missing, after 3 event 4 is.
    const fromFour = bus.since(4);
    expect(fromFour.kind === 'events' && ids(fromFour.events)).toEqual([5, 6, 7]);
    expect(bus.since(3)).toEqual({ kind: 'reset', lastId: 7, oldestId: 5 });
    expect(bus.since(0)).toEqual({ kind: 'reset', lastId: 7, oldestId: 5 });
  });

  it('answers a reset to an id it never gave (another run of the gateway)', () => {
    const bus = new EventBus({ firstId: 1000 });
    bus.keepForReplay();
    bus.publish(state(1));
    expect(bus.since(5000)).toEqual({ kind: 'reset', lastId: 1000, oldestId: 1000 });
    expect(bus.since(10)).toEqual({ kind: 'reset', lastId: 1000, oldestId: 1000 });
    // Nothing published yet: only the id just before the first is current.
    const fresh = new EventBus({ firstId: 50 });
    expect(fresh.since(49)).toEqual({ kind: 'events', events: [] });
    expect(fresh.since(48).kind).toBe('reset');
  });

  it('keeps events only while a stream may come back for them: open, or within `capacity` events of closing', () => {
    const bus = new EventBus({ capacity: 3 });
    bus.publish(state(1));
    // Nobody could hold an id to resume from: nothing kept, any older id is a reset.
    expect(bus.since(0)).toEqual({ kind: 'reset', lastId: 1, oldestId: 2 });
    const release = bus.keepForReplay();
    bus.publish(state(2));
    bus.publish(state(3));
    release();
    release(); // twice is once
    // The client left after 3: what it misses within the buffer is kept for its reconnect.
    bus.publish(state(4));
    bus.publish(state(5));
    const back = bus.since(3);
    expect(back.kind === 'events' && ids(back.events)).toEqual([4, 5]);
    bus.publish(state(6));
    const still = bus.since(3);
    expect(still.kind === 'events' && ids(still.events)).toEqual([4, 5, 6]);
    // A 4th event since it left: past the buffer, as with a stream open, so recording stops and the ring empties.
    bus.publish(state(7));
    expect(bus.since(3)).toEqual({ kind: 'reset', lastId: 7, oldestId: 8 });
    expect(bus.since(6)).toEqual({ kind: 'reset', lastId: 7, oldestId: 8 });
    expect(bus.since(7)).toEqual({ kind: 'events', events: [] });
    // A new stream: kept again from its first event on.
    bus.keepForReplay();
    bus.publish(state(8));
    const fresh = bus.since(7);
    expect(fresh.kind === 'events' && ids(fresh.events)).toEqual([8]);
  });
});
