import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Runs `fn` in the context this module was loaded in: before any request, so with no request's store (nestjs-pino
 * keeps a request's logger, and with it its request_id, in an AsyncLocalStorage). A timer or a callback set up from
 * there does not inherit the request that happened to arm it: a keep-alive that expires minutes later, or a job the
 * engine starts after another job's request has ended, must not write that request's id on its lines.
 */
export const outsideRequest: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
