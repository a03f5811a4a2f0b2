import type { ResolvedMode } from '../modes/mode.types.js';
import type {
  BatchMember,
  GenerateOptions,
  GenerateParams,
  GeneratedImage,
  LoadResult,
  MemoryStats,
  PrefetchResult,
  ModelInventory,
} from './model-host.types.js';

/** A model host health check's answer: serving, said it is not (starting, draining), or did not answer. */
export type ModelHostHealth = 'serving' | 'not-serving' | 'no-answer';

/**
 * What the gateway asks of one model host: ModelHostClient speaks it over gRPC, the unit tests' fake in memory.
 * Every failure is a domain error.
 */
export interface ModelHost {
  load(mode: ResolvedMode): Promise<LoadResult>;
  /**
   * A hint, never a command: the modes the queue will want next, most wanted first. The model host builds them into
   * its RAM tier in the background (within RAM_CACHE_BYTES, evicting nothing) and drops a prefetch the latest hint
   * no longer names. Answers at once.
   */
  prefetch(modes: readonly ResolvedMode[]): Promise<PrefetchResult>;
  /** Drops a pipeline; resolves to the bytes freed. */
  unload(key: string): Promise<number>;
  /** Moves a pipeline to the RAM tier when it fits there, else drops it. */
  offload(key: string): Promise<{ freedBytes: number; parked: boolean }>;
  getMemory(): Promise<MemoryStats>;
  /** The model files under the model roots, as the model host's watcher sees them. */
  listModels(): Promise<ModelInventory>;
  /** Aborting `options.signal` cancels the generation, which rejects with JobCancelledError. */
  generate(params: GenerateParams, options?: GenerateOptions): Promise<GeneratedImage>;
  /**
   * Runs the members as one pipeline call where they can share one (same key, size, steps, guidance, sampler,
   * superres, clip skip, and each with or without a negative prompt; the model host runs the others in calls of
   * their own). One promise per member, in order, settling as `generate` would for that member alone: its image
   * (equal to the one it gets alone, within the last bits of float arithmetic), its own error, or
   * JobCancelledError at once when its signal aborts, while the others run on.
   */
  generateBatch(members: readonly BatchMember[]): Promise<GeneratedImage>[];
  runTask(name: string, args?: Readonly<Record<string, unknown>>): Promise<unknown>;
  healthStatus(): Promise<ModelHostHealth>;
  /** Replaces the roots the model host may load from (and watches); answers the roots it applied. */
  setModelRoots(roots: readonly string[]): Promise<string[]>;
  /** Resolves once the model host serves; rejects with ModelHostUnavailableError past `timeoutMs` or on `signal`. */
  waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Closes the channels; nothing is called after. */
  close(): void;
}

/**
 * The process behind a model host (ModelHostProcessService runs one when SIDECAR_ADDR is unset). It only runs the
 * process: when to start it again, and what a loss means, is its ModelHostConnection's to decide.
 */
export interface ModelHostProcess {
  /** True when the gateway runs the process itself (and so can start it again after it ended). */
  readonly managed: boolean;
  /** Starts the process unless it runs (or the model host is one the gateway does not run). */
  start(): void;
  /** `listener` is told each time the process ends unexpectedly; the text says how. */
  onLost(listener: (reason: string) => void): void;
  /** Resolves once the model host serves; rejects early when the process ends first. */
  waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Stops the process, when the gateway runs it; resolves once it ended. */
  stop(): Promise<void>;
  /** Ends the process at once (SIGKILL), for a gateway whose own start failed. */
  killNow(): void;
}
