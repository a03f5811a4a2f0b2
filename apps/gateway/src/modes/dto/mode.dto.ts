import {
  IsArray,
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';

import { IsImageSize } from '../../common/image-size.js';
import {
  CLIP_SKIP_MAX,
  MAX_INFERENCE_STEPS,
  PREDICTION_TYPES,
  SAMPLER_MESSAGE,
  SAMPLER_NAMES,
  type PredictionType,
  type SamplerName,
} from '../../common/samplers.js';
import { IsKeepAlive } from '../keep-alive.js';
import { LoraDto } from './lora.dto.js';
import { SuperresDto } from './superres.dto.js';

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** One entry under `modes:` as written in modes.yaml. */
export class ModeDto {
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  model!: string;

  /** A diffusers config folder for offline single-file loading, relative to model_root. */
  @IsOptional()
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  config?: string;

  @IsOptional()
  @ValidateNested({ each: true, message: 'must be a path or a mapping with path, strength and adapter_name' })
  @IsArray({ message: 'must be a list' })
  loras?: LoraDto[];

  @IsOptional()
  @IsImageSize()
  default_size?: string;

  @IsOptional()
  @Max(MAX_INFERENCE_STEPS, { message: `must be at most ${MAX_INFERENCE_STEPS}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  default_steps?: number;

  @IsOptional()
  @Max(30, { message: 'must be at most 30' })
  @Min(0, { message: 'must be at least 0' })
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number' })
  default_guidance?: number;

  /** Free-form, kept as written. */
  @IsOptional()
  @IsObject({ message: 'must be a mapping' })
  metadata?: Record<string, unknown>;

  /** The sampler; absent: `default`, the scheduler the checkpoint's config names. A request may override it. */
  @IsOptional()
  @IsIn(SAMPLER_NAMES, { message: SAMPLER_MESSAGE })
  scheduler?: SamplerName;

  /** A1111's convention, as civitai pages give it: 1 = no skip, 2 = the penultimate layer. */
  @IsOptional()
  @Max(CLIP_SKIP_MAX, { message: `must be at most ${CLIP_SKIP_MAX}` })
  @Min(1, { message: 'must be at least 1 (1 = no skip, 2 = the penultimate layer)' })
  @IsInt({ message: 'must be an integer' })
  clip_skip?: number;

  /** Overrides what the checkpoint's config says the UNet predicts (SD2 768 models: v_prediction). */
  @IsOptional()
  @IsIn(PREDICTION_TYPES, { message: `must be one of ${PREDICTION_TYPES.join(', ')}` })
  prediction_type?: PredictionType;

  /** A VAE to use instead of the checkpoint's own, relative to model_root: a .safetensors file or a diffusers VAE folder. */
  @IsOptional()
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  vae?: string;

  @IsOptional()
  @ValidateNested({ message: 'must be a mapping with model and scale' })
  @IsObject({ message: 'must be a mapping with model and scale' })
  superres?: SuperresDto;

  /** How long the mode stays on the device after its last use: a duration, seconds, 0 or -1 (see keep-alive.ts). */
  @IsOptional()
  @IsKeepAlive()
  keep_alive?: string | number;

  /** Never evicted to make room for another mode. */
  @IsOptional()
  @IsBoolean({ message: 'must be true or false' })
  pinned?: boolean;
}

/**
 * One entry under `modes:` as the class its checks are declared on, before validation. Not plainToInstance: the
 * entry is plain data that inspectPlainData has already walked, and class-transformer's deep copy of each one was
 * a sixth of the parse time of a 1,000-mode file. Every key is kept, so that strict validation names the unknown
 * ones (a key named like an Object method, `toString`, included: class-transformer drops those silently). A plain
 * string in `loras` is the short form of `{ path }`; anything else is left for validation to reject.
 */
export function toModeDto(raw: Record<string, unknown>): ModeDto {
  const dto = Object.assign(new ModeDto(), raw);
  const { loras, superres } = raw;
  if (Array.isArray(loras)) dto.loras = loras.map(toLoraDto) as LoraDto[];
  if (isMapping(superres)) dto.superres = Object.assign(new SuperresDto(), superres);
  return dto;
}

function toLoraDto(entry: unknown): unknown {
  if (typeof entry === 'string') return Object.assign(new LoraDto(), { path: entry });
  if (isMapping(entry)) return Object.assign(new LoraDto(), entry);
  // class-validator would walk into a list inside the list and report a mapping there with no field name; no LoRA
  // is a list, so it goes on as null: refused at its own index like any other entry that is not a LoRA.
  return Array.isArray(entry) ? null : entry;
}
