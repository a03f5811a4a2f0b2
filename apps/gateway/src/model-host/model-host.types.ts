/** Where a resident pipeline is: on its model host's device (GPU, or the CPU on CPU hosts), or in its RAM tier. */
export type ResidencyTier = 'device' | 'ram';

/** What the gateway knows of the model host, in its own (camelCase) terms: no gRPC type leaves this folder. */

export interface LoadResult {
  readonly key: string;
  /** sd15, sd2, sdxl-base, sdxl-refiner, ... as the model host detected it. */
  readonly architecture: string;
  readonly bytes: number;
  readonly estimatedBytes: number;
  readonly loadSeconds: number;
  /**
   * Where the pipeline came from: disk, already resident, back from the RAM
   * tier, or a new key on a resident base pipeline (only its LoRAs loaded).
   */
  readonly source: 'disk' | 'resident' | 'ram' | 'shared-base' | 'unknown';
  /** Keys that left the device to make room. */
  readonly evicted: readonly string[];
  /** Those of `evicted` parked in the RAM tier (still loaded). */
  readonly evictedToRam: readonly string[];
  /** Those of `evicted` that left in an out-of-memory retry (every idle model goes), not to make planned room. */
  readonly evictedOnOom: readonly string[];
  readonly device: string;
  /** The base came from a prefetch (built in the background into the RAM tier before this load asked for it). */
  readonly prefetched: boolean;
}

/** A prefetch hint's answer: the keys the model host builds (or holds) in its RAM tier, and those it left. */
export interface PrefetchResult {
  readonly wanted: readonly string[];
  /** Already resident, no room in the RAM tier, or not a valid load. */
  readonly skipped: readonly string[];
}

export interface ResidentModel {
  readonly key: string;
  readonly modelPath: string;
  readonly bytes: number;
  readonly loras: readonly { readonly path: string; readonly strength: number; readonly adapterName: string }[];
  /** Where the pipeline is: on the host's device, or parked in its RAM tier (the one name for it everywhere). */
  readonly tier: ResidencyTier;
  readonly lastUsedUnixMs: number;
  readonly architecture: string;
  readonly inRamTier: boolean;
  /** The oldest key on the same base pipeline (itself if none is older). */
  readonly baseKey: string;
  /** A file it was loaded from changed after the load: it runs the old weights until reloaded. */
  readonly stale: boolean;
}

export interface MemoryStats {
  readonly device: string;
  readonly deviceName: string;
  readonly totalBytes: number;
  readonly usedBytes: number;
  readonly availableBytes: number;
  readonly models: readonly ResidentModel[];
  /** Kept free by the model host; not part of availableBytes. */
  readonly reserveBytes: number;
  readonly ramTierBytes: number;
  /** 0: no RAM tier. */
  readonly ramTierCapacityBytes: number;
}

export interface GenerateParams {
  /** A resident pipeline's key. */
  readonly key: string;
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly guidanceScale: number;
  readonly seed: number;
  /** Upscale with the mode's superres model. */
  readonly superres: boolean;
  /** A sampler name of common/samplers.ts; '' (or `default`): the checkpoint's own (the proto's `scheduler` field). */
  readonly sampler: string;
  /** A1111's convention (1 = no skip, 2 = the penultimate layer); 0 or 1: none. */
  readonly clipSkip: number;
}

export interface GenerateProgress {
  readonly step: number;
  readonly totalSteps: number;
  readonly elapsedSeconds: number;
}

export interface GenerateOptions {
  /** Aborting cancels the call, which stops the model host's denoising loop. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: GenerateProgress) => void;
}

/** One generation of a batch (ModelHost.generateBatch): its own parameters, signal and progress. */
export interface BatchMember {
  readonly params: GenerateParams;
  readonly options?: GenerateOptions;
}

export interface GeneratedImage {
  readonly png: Buffer;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
  readonly superresApplied: boolean;
}

/** One entry of the model host's inventory of its model roots (ListModels). */
export interface InventoryFile {
  /** Absolute: a single file, or a diffusers pipeline folder. */
  readonly path: string;
  /** The watched root it lies under. */
  readonly root: string;
  /** sd15, sd2, sdxl-base, sdxl-refiner, lora, upscaler, or unknown (see reason). */
  readonly architecture: string;
  /** safetensors, pickle (never opened), diffusers, or diffusers-config (a pipeline folder without weights). */
  readonly format: string;
  /** A folder: the sum of its files. */
  readonly sizeBytes: number;
  /** A folder: its newest file. */
  readonly mtimeUnixMs: number;
  /** Why the architecture is unknown; empty otherwise. */
  readonly reason: string;
  /** Loaded keys that use this file. */
  readonly residentKeys: readonly string[];
  /** One of those keys was loaded before the file last changed. */
  readonly stale: boolean;
}

export interface ModelInventory {
  readonly files: readonly InventoryFile[];
  readonly roots: readonly string[];
  /** Watched by polling rather than OS events. */
  readonly polling: boolean;
}
