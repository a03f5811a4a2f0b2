import { plainToInstance, Transform, Type } from 'class-transformer';
import {
  IsArray,
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
  PREDICTION_TYPES,
  SCHEDULER_MESSAGE,
  SCHEDULER_NAMES,
  type PredictionType,
  type SchedulerName,
} from '../../common/samplers.js';
import { LoraDto } from './lora.dto.js';
import { SuperresDto } from './superres.dto.js';

const isMapping = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A plain string is the short form of `{ path }`; anything else is left for validation to reject. */
function toLoraDtos({ value }: { value: unknown }): unknown {
  if (!Array.isArray(value)) return value;
  return value.map((entry: unknown) => {
    if (typeof entry === 'string') return plainToInstance(LoraDto, { path: entry });
    return isMapping(entry) ? plainToInstance(LoraDto, entry) : entry;
  });
}

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
  @Transform(toLoraDtos, { toClassOnly: true })
  loras?: LoraDto[];

  @IsOptional()
  @IsImageSize()
  default_size?: string;

  @IsOptional()
  @Max(150, { message: 'must be at most 150' })
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
  @IsIn(SCHEDULER_NAMES, { message: SCHEDULER_MESSAGE })
  scheduler?: SchedulerName;

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
  @Type(() => SuperresDto)
  superres?: SuperresDto;
}
