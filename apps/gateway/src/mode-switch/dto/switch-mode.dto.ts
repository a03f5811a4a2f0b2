import { ApiProperty } from '@nestjs/swagger';
import { IsDefined, IsNotEmpty, IsString, Matches } from 'class-validator';

import { MODE_NAME, MODE_NAME_PATTERN, MODE_NAME_RULE } from '../../modes/mode-name.js';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** The body of POST /api/modes/switch. */
export class SwitchModeDto {
  @ApiProperty({ example: 'sdxl-portrait', description: 'a mode of modes.yaml', pattern: MODE_NAME_PATTERN })
  @Matches(MODE_NAME, { message: `must be a mode name: mode names ${MODE_NAME_RULE}` })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  mode!: string;
}

/** The reply: the switch is queued behind the jobs already there, not done yet. */
export class SwitchQueuedDto {
  @ApiProperty({ example: 'queued', enum: ['queued'] })
  status!: 'queued';

  @ApiProperty({
    example: 'sdxl-general',
    nullable: true,
    type: String,
    description: 'the mode the device will hold when the switch runs (the active one when nothing is queued)',
  })
  from_mode!: string | null;

  @ApiProperty({ example: 'sdxl-portrait' })
  to_mode!: string;

  @ApiProperty({
    example: 'Mode switch queued. Will switch after 2 pending jobs.',
    description: 'N counts every job that finishes before the switch: those waiting ahead of it and the running one',
  })
  message!: string;

  @ApiProperty({
    example: 'f3b0c2de-8a4e-4c43-9a77-0c1d2e3f4a5b',
    description: 'added: the switch is a job: GET /api/jobs/{id} follows it (the Location header names it too)',
  })
  id!: string;
}
