import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';

import { IMAGE_SIZE_PATTERN, IsImageSize } from '../../common/image-size.js';
import { MAX_INFERENCE_STEPS, SAMPLER_MESSAGE, SAMPLER_NAMES, type SamplerName } from '../../common/samplers.js';
import { IsOmittable, registerFieldAliases } from '../../common/validation-errors.js';
import { MODE_NAME, MODE_NAME_PATTERN, MODE_NAME_RULE } from '../../modes/mode-name.js';

/** Far more than any text encoder reads (CLIP takes 77 tokens); bounds what a request can make the server hold. */
export const MAX_PROMPT_LENGTH = 10_000;

/** The required, non-blank prompt of /generate and /v1/images/generations: one set of rules and messages. */
export function IsPrompt(example: string): PropertyDecorator {
  // Applied in this order, as the same decorators stacked bottom-up were: the messages keep their order.
  return applyDecorators(
    IsDefined({ message: 'is required' }),
    IsString({ message: 'must be a string' }),
    MaxLength(MAX_PROMPT_LENGTH, { message: `must be at most ${MAX_PROMPT_LENGTH} characters` }),
    Matches(/\S/, { message: 'must not be empty' }),
    ApiProperty({
      example,
      description: 'required, not blank',
      minLength: 1,
      maxLength: MAX_PROMPT_LENGTH,
      pattern: '\\S',
    }),
  );
}

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** The body of POST /generate; absent fields take the mode's defaults, unknown fields are rejected. */
export class GenerateRequestDto {
  @IsPrompt('a beautiful landscape')
  prompt!: string;

  @ApiPropertyOptional({
    example: 'sd15-fast',
    pattern: MODE_NAME_PATTERN,
    description:
      'a mode of modes.yaml; absent: the mode the device will hold when the request runs (the default mode at first)',
  })
  @IsOmittable()
  @Matches(MODE_NAME, { message: `must be a mode name: mode names ${MODE_NAME_RULE}` })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  mode?: string;

  @ApiPropertyOptional({ example: 'blurry', default: '', maxLength: MAX_PROMPT_LENGTH })
  @IsOmittable()
  @MaxLength(MAX_PROMPT_LENGTH, { message: `must be at most ${MAX_PROMPT_LENGTH} characters` })
  @IsString({ message: 'must be a string' })
  negative_prompt?: string;

  @ApiPropertyOptional({
    example: '896x1152',
    pattern: IMAGE_SIZE_PATTERN,
    description: "WIDTHxHEIGHT, multiples of 8 from 8 to 2048; absent: the mode's default_size",
  })
  @IsOmittable()
  @IsImageSize()
  size?: string;

  @ApiPropertyOptional({
    example: 35,
    minimum: 1,
    maximum: MAX_INFERENCE_STEPS,
    type: 'integer',
    description: "absent: the mode's default_steps",
  })
  @IsOmittable()
  @Max(MAX_INFERENCE_STEPS, { message: `must be at most ${MAX_INFERENCE_STEPS}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  num_inference_steps?: number;

  @ApiPropertyOptional({ example: 8.0, minimum: 0, maximum: 30, description: "absent: the mode's default_guidance" })
  @IsOmittable()
  @Max(30, { message: 'must be at most 30' })
  @Min(0, { message: 'must be at least 0' })
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number' })
  guidance_scale?: number;

  @ApiPropertyOptional({
    example: 42,
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    type: 'integer',
    description: 'absent: a random seed, echoed in X-Seed',
  })
  @IsOmittable()
  @Max(Number.MAX_SAFE_INTEGER, { message: `must be at most ${Number.MAX_SAFE_INTEGER}` })
  @Min(0, { message: 'must be at least 0' })
  @IsInt({ message: 'must be an integer' })
  seed?: number;

  @ApiPropertyOptional({
    enum: SAMPLER_NAMES,
    example: 'dpmpp_2m_karras',
    description:
      "the sampler for this image; absent: the mode's scheduler. `default`: the checkpoint's own. Never reloads the model",
  })
  @IsOmittable()
  @IsIn(SAMPLER_NAMES, { message: SAMPLER_MESSAGE })
  scheduler?: SamplerName;

  @ApiPropertyOptional({ example: false, default: false, description: "upscale with the mode's superres model" })
  @IsOmittable()
  @IsBoolean({ message: 'must be true or false' })
  superres?: boolean;
}

registerFieldAliases(GenerateRequestDto, {
  steps: 'num_inference_steps',
  cfg: 'guidance_scale',
  cfg_scale: 'guidance_scale',
  guidance: 'guidance_scale',
  negative: 'negative_prompt',
  width: 'size ("WIDTHxHEIGHT")',
  height: 'size ("WIDTHxHEIGHT")',
  sampler: 'scheduler',
  sampler_name: 'scheduler',
  model: 'mode',
});
