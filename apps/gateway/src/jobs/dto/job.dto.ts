import { ApiProperty } from '@nestjs/swagger';

import type { JobKind, JobRecord, JobState, JobSwitch } from '../../queue/job-record.types.js';

const STATES: JobState[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];

export class JobProgressDto {
  @ApiProperty({ example: 12, description: 'denoising steps done' })
  step!: number;

  @ApiProperty({ example: 30 })
  total_steps!: number;
}

export class JobSwitchDto implements JobSwitch {
  @ApiProperty({ type: String, nullable: true, example: 'sdxl-general', description: 'null: nothing was active' })
  from_mode!: string | null;

  @ApiProperty({ example: 'sd15-fast' })
  to_mode!: string;

  @ApiProperty({
    enum: ['resident', 'shared-base', 'ram', 'disk', 'unknown'],
    description:
      'where the model came from: already resident, a new key on a resident base (only LoRAs loaded), ' +
      'back from the RAM tier, or read from disk',
  })
  source!: JobSwitch['source'];

  @ApiProperty({
    example: false,
    description: 'the pipeline came from a prefetch: built into the RAM tier while earlier jobs ran (PREFETCH)',
  })
  prefetched!: boolean;
}

export class JobErrorDto {
  @ApiProperty({ example: 'model_host_unavailable' })
  error!: string;

  @ApiProperty({ example: 'Model host unavailable: ...' })
  message!: string;

  @ApiProperty({ example: 503 })
  statusCode!: number;
}

/** A job record: GET /api/jobs/:id, and each item of GET /api/jobs. */
export class JobDto implements JobRecord {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty({ enum: ['generation', 'mode-switch', 'custom'] })
  kind!: JobKind;

  @ApiProperty({ type: String, nullable: true, example: 'sdxl-general', description: 'null for custom jobs' })
  mode!: string | null;

  @ApiProperty({ enum: STATES })
  state!: JobState;

  @ApiProperty({
    type: Number,
    nullable: true,
    example: 1,
    description: 'while queued, its place in the order the scheduler will run the waiting jobs (1 runs next)',
  })
  position!: number | null;

  @ApiProperty({ type: JobProgressDto, nullable: true, description: 'the last denoising step reported' })
  progress!: JobProgressDto | null;

  @ApiProperty({ type: Number, nullable: true, example: 42 })
  seed!: number | null;

  @ApiProperty({ format: 'date-time' })
  created_at!: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  started_at!: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  finished_at!: string | null;

  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'ms from submission to its start (or its end, if it never ran)',
  })
  queue_ms!: number | null;

  @ApiProperty({ type: Number, nullable: true, description: 'ms spent loading a mode in its turn; null: no switch' })
  switch_ms!: number | null;

  @ApiProperty({ type: Number, nullable: true, description: 'ms the generation itself took' })
  generate_ms!: number | null;

  @ApiProperty({ type: JobSwitchDto, nullable: true, description: 'the mode switch its turn included, if any' })
  switch!: JobSwitchDto | null;

  @ApiProperty({
    type: JobErrorDto,
    nullable: true,
    description: 'a failed or cancelled job: the body the HTTP error would carry',
  })
  error!: JobErrorDto | null;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'gpu-box/cuda:0',
    description: 'the model host that ran it (`<gateway id>/<device>`, as in status `hosts`); null until it runs',
  })
  host!: string | null;
}

export class JobListDto {
  @ApiProperty({ type: [JobDto], description: 'newest first' })
  jobs!: JobDto[];
}
