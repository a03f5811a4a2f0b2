import type { QueueBackend } from '../src/queue/queue-backend.js';

/**
 * A backend that answers every call as a Promise settled on a later turn of the event loop (setImmediate), like one
 * in another process would: the in-memory backend underneath, so the contract suite and the engine's asynchronous
 * path (one drain at a time, a host reserved while it claims) are tested without Redis.
 */
export function answeringLater(inner: QueueBackend): QueueBackend {
  const later =
    <A extends unknown[], R>(method: (...args: A) => R) =>
    (...args: A): Promise<Awaited<R>> =>
      new Promise((resolve, reject) =>
        setImmediate(() => {
          try {
            resolve(method.apply(inner, args) as Awaited<R>);
          } catch (error) {
            reject(error as Error);
          }
        }),
      );
  return {
    answersAtOnce: false,
    records: inner.records,
    enqueue: later(inner.enqueue),
    claim: later(inner.claim),
    cancel: later(inner.cancel),
    expire: later(inner.expire),
    nextExpiry: later(inner.nextExpiry),
    plan: later(inner.plan),
    size: later(inner.size),
    waitingFor: later(inner.waitingFor),
    nextDeadline: later(inner.nextDeadline),
    oldestOf: later(inner.oldestOf),
    close: later(inner.close),
  };
}
