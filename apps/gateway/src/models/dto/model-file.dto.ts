import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** The reply of GET /api/models, snake_case like the rest of the API. */

/** `config`: a diffusers config folder without weights (what a mode's `config` names), not something to load. */
export const MODEL_KINDS = ['checkpoint', 'config', 'lora', 'upscaler', 'unknown'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export const RESIDENT_LOCATIONS = ['device', 'ram'] as const;
export type ResidentLocation = (typeof RESIDENT_LOCATIONS)[number];

export class ModelFileDto {
  @ApiProperty({ example: 'sdxl/sdxl-base-1.0.safetensors', description: 'relative to `root`' })
  path!: string;

  @ApiProperty({ example: '/models', description: 'the model root it lies under (symlinks resolved)' })
  root!: string;

  @ApiProperty({ enum: MODEL_KINDS, example: 'checkpoint' })
  kind!: ModelKind;

  @ApiProperty({
    example: 'sdxl-base',
    description: 'sd15, sd2, sdxl-base, sdxl-refiner, lora, upscaler, or unknown (see `reason`), read from its keys',
  })
  architecture!: string;

  @ApiProperty({
    example: 'safetensors',
    description:
      'safetensors, pickle (.ckpt/.pt/.pth/.bin: never opened to list it), diffusers (a pipeline folder), ' +
      'or diffusers-config (a pipeline folder without weights)',
  })
  format!: string;

  @ApiProperty({ example: 6938078334, description: 'a folder: the sum of its files' })
  bytes!: number;

  @ApiProperty({ example: '2026-03-01T12:00:00.000Z', description: 'ISO 8601; a folder: its newest file' })
  modified_at!: string;

  @ApiPropertyOptional({ example: 'no UNet keys', description: 'why the architecture is unknown' })
  reason?: string;

  @ApiProperty({
    type: [String],
    example: ['sdxl-general', 'sdxl-portrait'],
    description: 'the modes of the running modes file that load it (as checkpoint, config, LoRA, VAE or upscaler)',
  })
  used_by!: string[];

  @ApiProperty({ example: true, description: 'a loaded pipeline uses it' })
  resident!: boolean;

  @ApiProperty({
    enum: RESIDENT_LOCATIONS,
    nullable: true,
    example: 'device',
    description: 'device: on the GPU (or CPU device); ram: parked in the RAM tier; null: not resident',
  })
  location!: ResidentLocation | null;

  @ApiProperty({
    example: false,
    description: 'a pipeline using it was loaded before the file last changed: it runs the old weights',
  })
  stale!: boolean;
}

export class ModelInventoryDto {
  @ApiProperty({ type: [String], example: ['/models', '/models/loras'], description: 'the folders watched' })
  roots!: string[];

  @ApiProperty({ example: false, description: 'watched by polling (MODEL_WATCH_POLL) rather than OS events' })
  polling!: boolean;

  @ApiProperty({ type: [ModelFileDto], description: 'sorted by absolute path' })
  models!: ModelFileDto[];
}
