import type { ImageSize } from '../common/image-size.js';
import type { PredictionType, SamplerName } from '../common/samplers.js';

export interface ResolvedLora {
  /** As written in modes.yaml, relative to lora_root. */
  readonly path: string;
  readonly absolutePath: string;
  readonly strength: number;
  readonly adapterName: string;
}

export interface ResolvedSuperres {
  /** As written in modes.yaml, relative to model_root. */
  readonly model: string;
  readonly modelPath: string;
  /** Undefined: the upscaler's own scale; another scale resizes its output to it. */
  readonly scale: number | undefined;
}

/** A mode with every default applied and every path absolute: what the model host is asked to load. */
export interface ResolvedMode {
  readonly name: string;
  /** `<name>-<12 hex of sha256 of what the model host loads>`: an edited mode is a new model host key. */
  readonly key: string;
  /** As written in modes.yaml, relative to model_root. */
  readonly model: string;
  readonly modelPath: string;
  /** As written in modes.yaml, relative to model_root; undefined: none. */
  readonly config: string | undefined;
  readonly configDir: string | undefined;
  readonly loras: readonly ResolvedLora[];
  readonly defaultSize: ImageSize;
  readonly defaultSteps: number;
  readonly defaultGuidance: number;
  /** Whether modes.yaml set default_steps / default_guidance (else the spec's 4 and 1.0 apply). */
  readonly defaultsSet: { readonly steps: boolean; readonly guidance: boolean };
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
  readonly superres: ResolvedSuperres | undefined;
  /** The mode's sampler (`default`: the checkpoint's own); a request may name another. Not part of the key. */
  readonly sampler: SamplerName;
  /** As written (A1111's convention: 1 = no skip); undefined: none. Not part of the key. */
  readonly clipSkip: number | undefined;
  readonly predictionType: PredictionType | undefined;
  /** As written in modes.yaml, relative to model_root; undefined: the checkpoint's own VAE. */
  readonly vae: string | undefined;
  readonly vaePath: string | undefined;
  /** keep_alive as written (-1 when absent). Memory policy: not part of the key. */
  readonly keepAlive: string | number;
  /** keep_alive in ms; undefined: until evicted. */
  readonly keepAliveMs: number | undefined;
  /** Never evicted to make room (the model host is told with each load). Not part of the key. */
  readonly pinned: boolean;
}

/** One immutable snapshot of the configuration; a reload swaps the whole object. */
export interface ModesConfig {
  /** Where it came from: the modes file's path, or the legacy variables. */
  readonly source: string;
  readonly legacy: boolean;
  readonly modelRoot: string;
  readonly loraRoot: string;
  readonly defaultMode: string;
  readonly modes: ReadonlyMap<string, ResolvedMode>;
}
