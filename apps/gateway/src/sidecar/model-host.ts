import type { ResolvedMode } from '../modes/mode.types.js';
import type { GenerateOptions, GenerateParams, GeneratedImage, LoadResult, MemoryStats } from './sidecar.types.js';

/** A model host health check's answer: serving, said it is not (starting, draining), or did not answer. */
export type ModelHostHealth = 'serving' | 'not-serving' | 'no-answer';

/**
 * What the gateway asks of one model host: SidecarRepository speaks it over gRPC, the unit tests' fake in memory.
 * Every failure is a domain error.
 */
export interface ModelHost {
  load(mode: ResolvedMode): Promise<LoadResult>;
  getMemory(): Promise<MemoryStats>;
  /** Aborting `options.signal` cancels the generation, which rejects with JobCancelledError. */
  generate(params: GenerateParams, options?: GenerateOptions): Promise<GeneratedImage>;
  runTask(name: string, args?: Readonly<Record<string, unknown>>): Promise<unknown>;
  healthStatus(): Promise<ModelHostHealth>;
  /** Replaces the roots the model host may load from (and watches); answers the roots it applied. */
  setModelRoots(roots: readonly string[]): Promise<string[]>;
  /** Resolves once the model host serves; rejects with SidecarUnavailableError past `timeoutMs` or on `signal`. */
  waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

/** Tells when a model host's process ends (SidecarProcessService, for one the gateway started). */
export interface ModelHostLossSource {
  onLost(listener: (reason: string) => void): void;
}
