import type { LoadResult } from '../sidecar/sidecar.types.js';

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
  ) {}
}

export class ModeSwitchJob {
  readonly kind = 'mode-switch';

  constructor(readonly mode: string) {}
}

/** Runs `handler(...args)` in its turn on the device queue, like the spec's `CustomJob(handler=..., args=...)`. */
export class CustomJob<T, A extends readonly unknown[] = readonly unknown[]> {
  readonly kind = 'custom';
  readonly handler: (...args: A) => T | Promise<T>;
  readonly args: A;

  constructor({ handler, args }: { handler: (...args: A) => T | Promise<T>; args: A }) {
    this.handler = handler;
    this.args = args;
  }

  /** Called by the pool when the job's turn comes. */
  async run(): Promise<T> {
    return this.handler(...this.args);
  }
}

/** Any job the pool accepts; a custom job is anything it can run in its turn. */
export type Job = GenerationJob | ModeSwitchJob | { readonly kind: 'custom'; run(): Promise<unknown> };

export interface ModeSwitchResult {
  readonly mode: string;
  /** Undefined when the mode was already active. */
  readonly load: LoadResult | undefined;
}

/** What submitJob returns: the TypeScript form of the spec's future. */
export interface JobHandle<T> {
  readonly id: number;
  result(): Promise<T>;
  /** A queued job is dropped; a running generation is cancelled on the sidecar. A running load or custom job runs to its end. */
  cancel(): void;
}
