import type { SamplerName } from '../common/samplers.js';
import type { HostSession } from '../model-host/host-session.js';
import type { LoadResult } from '../model-host/model-host.types.js';

/** Generation settings with the mode's defaults already applied and the seed chosen. */
export interface GenerationParams {
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  readonly seed: number;
  readonly superres: boolean;
  /** The request's sampler; undefined: the mode's, taken when the job runs. */
  readonly sampler?: SamplerName;
}

/*
 * GenerationJob and ModeSwitchJob are plain data (a mode name, not a resolved
 * mode; no functions), so they can later travel through a shared queue.
 */

export class GenerationJob {
  readonly kind = 'generation';

  constructor(
    readonly mode: string,
    readonly params: GenerationParams,
    /** Who queued it (auth/caller.ts: a key's id); undefined: the server itself. */
    readonly owner?: string,
  ) {}
}

export class ModeSwitchJob {
  readonly kind = 'mode-switch';

  constructor(readonly mode: string) {}
}

/** What a running CustomJob's handler gets as `this` (a `function`, not an arrow): the model host it runs on. */
export interface JobContext {
  readonly host: HostSession;
}

/** A function a CustomJob may run: its arguments and result are the job's; `this` is its JobContext. */
export type JobHandler<T = unknown, A extends readonly unknown[] = readonly unknown[]> = (
  this: JobContext,
  ...args: A
) => T | Promise<T>;

/** A JobHandler that gets the model host it runs on as its first argument: `onHost((host, a, b) => ...)`. */
export function onHost<T, A extends readonly unknown[]>(
  run: (host: HostSession, ...args: A) => T | Promise<T>,
): JobHandler<T, A> {
  return function (this: JobContext, ...args: A) {
    return run(this.host, ...args);
  };
}

/**
 * Runs a handler in its turn on the device queue, like the spec's `CustomJob(handler=..., args=...)`.
 *
 * - `new CustomJob({ handler: fn, args: [a, b] })` runs `fn(a, b)`.
 * - `new CustomJob({ handler: 'name', args: [a, b] })` runs the handler registered under that name with
 *   `pool.registerHandler(name, fn)`: the job is then plain data (a name and JSON-like arguments), the form a
 *   shared queue backend can carry. The pool registers `model-host.run-task` itself: its args are
 *   `[taskName, { ...taskArgs }]` and it calls the model host's RunTask.
 * - It runs on whichever model host takes it first, or on the one `host` names (an id from
 *   GET /api/models/status' `hosts`); a `function` handler reads the one it runs on as `this.host`.
 */
export class CustomJob<T = unknown, A extends readonly unknown[] = readonly unknown[]> {
  readonly kind = 'custom';
  readonly handler: JobHandler<T, A> | string;
  readonly args: A;
  /** The id of the model host it must run on; undefined: any. */
  readonly host: string | undefined;

  constructor(options: { handler: JobHandler<T, A>; args: A; host?: string });
  constructor(options: { handler: string; args: A; host?: string });
  constructor({ handler, args, host }: { handler: JobHandler<T, A> | string; args: A; host?: string }) {
    this.handler = handler;
    this.args = args;
    this.host = host;
  }
}

/** Any job the pool accepts. */
export type Job = GenerationJob | ModeSwitchJob | CustomJob;

export interface ModeSwitchResult {
  readonly mode: string;
  /** Undefined when the mode was already active. */
  readonly load: LoadResult | undefined;
}

/** What submitJob returns: the TypeScript form of the spec's future. */
export interface JobHandle<T> {
  /** The job's id in the job store: GET /api/jobs/:id. */
  readonly id: string;
  /** Jobs that will finish before this one starts, when it was submitted: those waiting ahead, and the running one. */
  readonly ahead: number;
  result(): Promise<T>;
  /** A queued job is dropped; a running generation is cancelled on the model host. A running load or custom job runs to its end. */
  cancel(): void;
}
