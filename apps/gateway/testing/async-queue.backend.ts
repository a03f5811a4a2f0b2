import type { QueueBackend } from '../src/queue/queue-backend.js';

/** `run`'s answer (or its error) on a later turn of the event loop. */
function later<R>(run: () => R | Promise<R>): Promise<R> {
  return new Promise((resolve, reject) =>
    setImmediate(() => {
      try {
        resolve(run());
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
}

/**
 * A backend that answers every call as a Promise settled on a later turn of the event loop (setImmediate), like one
 * in another process would: the in-memory backend underneath, so the contract suite and the engine's asynchronous
 * path (one drain at a time, a host reserved while it claims) are tested without Redis.
 */
export function answeringLater(inner: QueueBackend): QueueBackend {
  return {
    answersAtOnce: false,
    records: inner.records,
    enqueue: (request) => later(() => inner.enqueue(request)),
    claim: (context, options) => later(() => inner.claim(context, options)),
    cancel: (id) => later(() => inner.cancel(id)),
    expire: (now) => later(() => inner.expire(now)),
    nextExpiry: () => later(() => inner.nextExpiry()),
    plan: (context) => later(() => inner.plan(context)),
    size: () => later(() => inner.size()),
    waitingFor: (host) => later(() => inner.waitingFor(host)),
    nextDeadline: (context) => later(() => inner.nextDeadline(context)),
    oldestOf: (mode) => later(() => inner.oldestOf(mode)),
    close: () => later(() => inner.close()),
  };
}
