import { ApiHideProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  Equals,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  ValidateIf,
  registerDecorator,
} from 'class-validator';

import { IMAGE_SIZE_PATTERN, IsImageSize } from '../../common/image-size.js';
import { MAX_INFERENCE_STEPS } from '../../common/samplers.js';
import { IsPrompt, MAX_PROMPT_LENGTH } from '../../generation/dto/generate-request.dto.js';

/** How many images one request may ask for: each is a job of its own. */
export const MAX_IMAGES = 10;
/** Far longer than any mode name; bounds what an unknown model's 404 repeats back. */
const MAX_MODEL_LENGTH = 256;

export const RESPONSE_FORMATS = ['b64_json', 'url'] as const;
export type ResponseFormat = (typeof RESPONSE_FORMATS)[number];

/** `size: "auto"` (OpenAI's value for "let the model choose"): the mode's default_size. */
export const AUTO_SIZE = 'auto';

/**
 * OpenAI's request fields that change nothing here, with the values OpenAI documents: accepted and ignored, so
 * clients that always send them work.
 */
const QUALITIES = ['auto', 'standard', 'hd', 'low', 'medium', 'high'];
const STYLES = ['vivid', 'natural'];
const MODERATIONS = ['auto', 'low'];

/** A field present with any value (null too, which OpenAI's API takes as "absent") fails with `message`. */
function Refused(message: string): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'refused',
      target: target.constructor,
      propertyName: String(propertyName),
      options: { message },
      validator: { validate: (value: unknown) => value === undefined || value === null },
    });
  };
}

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION. Optional fields use
// IsOptional, not IsOmittable: OpenAI's API takes null as "absent" for each of them, and its clients send it so.

/**
 * The body of POST /v1/images/generations: OpenAI's fields, plus ours (`negative_prompt`, `seed`, `steps`,
 * `guidance_scale`). Unknown fields are refused, like everywhere in this API.
 */
export class ImageGenerationRequestDto {
  @IsPrompt('a lighthouse at dusk')
  prompt!: string;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    example: 'sd15-fast',
    minLength: 1,
    maxLength: MAX_MODEL_LENGTH,
    description: 'a mode of modes.yaml (GET /v1/models lists them); absent: the default mode',
  })
  @IsOptional()
  @MaxLength(MAX_MODEL_LENGTH, { message: `must be at most ${MAX_MODEL_LENGTH} characters` })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  model?: string | null;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: 1,
    maximum: MAX_IMAGES,
    default: 1,
    description: 'how many images: one job each, seeds `seed`, `seed + 1`, ... (random and distinct without `seed`)',
  })
  @IsOptional()
  @Max(MAX_IMAGES, { message: `must be at most ${MAX_IMAGES}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  n?: number | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    example: '512x512',
    pattern: `^${AUTO_SIZE}$|${IMAGE_SIZE_PATTERN}`,
    description: "WIDTHxHEIGHT, multiples of 8 from 8 to 2048, or `auto`; absent or `auto`: the mode's default_size",
  })
  @ValidateIf((body: ImageGenerationRequestDto) => body.size != null && body.size !== AUTO_SIZE)
  @IsImageSize()
  size?: string | null;

  @ApiPropertyOptional({
    enum: RESPONSE_FORMATS,
    nullable: true,
    default: 'b64_json',
    description: '`url`: an absolute URL of GET /api/jobs/{id}/image (kept for JOB_RETENTION_MS)',
  })
  @IsOptional()
  @IsIn(RESPONSE_FORMATS, { message: `must be one of ${RESPONSE_FORMATS.join(', ')}` })
  response_format?: ResponseFormat | null;

  @ApiPropertyOptional({ type: String, nullable: true, example: 'blurry', maxLength: MAX_PROMPT_LENGTH })
  @IsOptional()
  @MaxLength(MAX_PROMPT_LENGTH, { message: `must be at most ${MAX_PROMPT_LENGTH} characters` })
  @IsString({ message: 'must be a string' })
  negative_prompt?: string | null;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    example: 42,
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    description: "the first image's seed; image i gets seed + i. Absent: random",
  })
  @IsOptional()
  @Max(Number.MAX_SAFE_INTEGER, { message: `must be at most ${Number.MAX_SAFE_INTEGER}` })
  @Min(0, { message: 'must be at least 0' })
  @IsInt({ message: 'must be an integer' })
  seed?: number | null;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    example: 4,
    minimum: 1,
    maximum: MAX_INFERENCE_STEPS,
    description: "denoising steps; absent: the mode's default_steps",
  })
  @IsOptional()
  @Max(MAX_INFERENCE_STEPS, { message: `must be at most ${MAX_INFERENCE_STEPS}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  steps?: number | null;

  @ApiPropertyOptional({
    type: Number,
    nullable: true,
    example: 7.5,
    minimum: 0,
    maximum: 30,
    description: "absent: the mode's default_guidance",
  })
  @IsOptional()
  @Max(30, { message: 'must be at most 30' })
  @Min(0, { message: 'must be at least 0' })
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number' })
  guidance_scale?: number | null;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 256, description: 'accepted and ignored' })
  @IsOptional()
  @MaxLength(256, { message: 'must be at most 256 characters' })
  @IsString({ message: 'must be a string' })
  user?: string | null;

  @ApiPropertyOptional({ enum: QUALITIES, nullable: true, description: 'accepted and ignored' })
  @IsOptional()
  @IsIn(QUALITIES, { message: `must be one of ${QUALITIES.join(', ')}` })
  quality?: string | null;

  @ApiPropertyOptional({ enum: STYLES, nullable: true, description: 'accepted and ignored' })
  @IsOptional()
  @IsIn(STYLES, { message: `must be one of ${STYLES.join(', ')}` })
  style?: string | null;

  @ApiPropertyOptional({ enum: MODERATIONS, nullable: true, description: 'accepted and ignored (no moderation here)' })
  @IsOptional()
  @IsIn(MODERATIONS, { message: `must be one of ${MODERATIONS.join(', ')}` })
  moderation?: string | null;

  @ApiPropertyOptional({ enum: ['png'], nullable: true, description: 'only `png`: every image is a PNG' })
  @IsOptional()
  @IsIn(['png'], { message: 'must be png: this server makes PNG images only' })
  output_format?: string | null;

  @ApiPropertyOptional({
    enum: ['auto', 'opaque'],
    nullable: true,
    description: '`auto` or `opaque`: the images are opaque; `transparent` is refused',
  })
  @IsOptional()
  @IsIn(['auto', 'opaque'], { message: 'must be auto or opaque: this server makes no transparent backgrounds' })
  background?: string | null;

  @ApiPropertyOptional({
    type: Boolean,
    nullable: true,
    enum: [false],
    description: 'only `false`: follow a job with GET /api/jobs/{id}/events instead',
  })
  @IsOptional()
  @Equals(false, { message: 'must be false: streaming is not supported (GET /api/jobs/{id}/events streams a job)' })
  @IsBoolean({ message: 'must be true or false' })
  stream?: boolean | null;

  // Refused with a reason rather than as an unknown field; not in the OpenAPI document (it lists what is taken).
  @ApiHideProperty()
  @Refused('is not supported: it applies to jpeg and webp, and this server makes PNG images only')
  output_compression?: unknown;

  @ApiHideProperty()
  @Refused('is not supported: it needs streaming, which this server does not do')
  partial_images?: unknown;
}
