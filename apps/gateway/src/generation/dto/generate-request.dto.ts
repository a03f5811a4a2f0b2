import {
  IsBoolean,
  IsDefined,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
} from 'class-validator';

import { IsImageSize } from '../../common/image-size.js';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** The body of POST /generate; absent fields take the mode's defaults, unknown fields are rejected. */
export class GenerateRequestDto {
  @Matches(/\S/, { message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  prompt!: string;

  @IsOptional()
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  mode?: string;

  @IsOptional()
  @IsString({ message: 'must be a string' })
  negative_prompt?: string;

  @IsOptional()
  @IsImageSize()
  size?: string;

  @IsOptional()
  @Max(150, { message: 'must be at most 150' })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  num_inference_steps?: number;

  @IsOptional()
  @Max(30, { message: 'must be at most 30' })
  @Min(0, { message: 'must be at least 0' })
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number' })
  guidance_scale?: number;

  @IsOptional()
  @Max(Number.MAX_SAFE_INTEGER, { message: `must be at most ${Number.MAX_SAFE_INTEGER}` })
  @Min(0, { message: 'must be at least 0' })
  @IsInt({ message: 'must be an integer' })
  seed?: number;

  @IsOptional()
  @IsBoolean({ message: 'must be true or false' })
  superres?: boolean;
}
