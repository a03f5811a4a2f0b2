import { ApiProperty, type OpenAPIObject } from '@nestjs/swagger';
import {
  Equals,
  IsDefined,
  IsNotEmpty,
  IsString,
  Matches,
  ValidateBy,
  ValidateIf,
  type ValidationArguments,
} from 'class-validator';

import { MODE_NAME, MODE_NAME_PATTERN, MODE_NAME_RULE } from '../../modes/mode-name.js';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

type Schema = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];

/**
 * The body's schema in the OpenAPI document: exactly one of the two fields (one property of the two allowed),
 * which the class below, with its optional fields, cannot say.
 */
export const UNLOAD_MODELS_SCHEMA: Schema = {
  type: 'object',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
  properties: {
    mode: { type: 'string', pattern: MODE_NAME_PATTERN, description: 'a mode of modes.yaml', example: 'sdxl-general' },
    all: { type: 'boolean', enum: [true], description: 'every mode, pinned ones included' },
  },
};

/** The body of POST /api/models/unload: one mode, or everything (see UNLOAD_MODELS_SCHEMA). */
export class UnloadModelsDto {
  @ValidateIf((body: UnloadModelsDto) => body.all === undefined || body.mode !== undefined)
  @Matches(MODE_NAME, { message: `must be a mode name: mode names ${MODE_NAME_RULE}` })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required unless all is true' })
  mode?: string;

  @ValidateIf((_body: UnloadModelsDto, value: unknown) => value !== undefined)
  @ValidateBy({
    name: 'notWithMode',
    validator: {
      validate: (_value: unknown, args?: ValidationArguments) => (args?.object as UnloadModelsDto).mode === undefined,
      defaultMessage: () => 'give either mode or all, not both',
    },
  })
  @Equals(true, { message: 'must be true (or name one mode instead)' })
  all?: true;
}

export class UnloadedModelDto {
  @ApiProperty({ example: 'sdxl-general' })
  mode!: string;

  @ApiProperty({ example: 'sdxl-general-3f2a9c1b7d4e', description: "the model host's key" })
  key!: string;

  @ApiProperty({
    example: 7_340_032_000,
    description: 'what the model host gave back: device memory, or system memory for the RAM tier',
  })
  freed_bytes!: number;

  @ApiProperty({ example: 'device', enum: ['device', 'ram'], description: 'where it was' })
  tier!: 'device' | 'ram';
}

/** What an unload freed, once it ran in its turn. */
export class UnloadReplyDto {
  @ApiProperty({ example: ['sdxl-general'], description: 'the modes unloaded (empty: none was loaded)' })
  modes!: string[];

  @ApiProperty({ example: ['sdxl-general-3f2a9c1b7d4e'] })
  keys!: string[];

  @ApiProperty({ example: 7_340_032_000, description: 'the sum of freed_bytes' })
  freed_bytes!: number;

  @ApiProperty({ type: [UnloadedModelDto] })
  unloaded!: UnloadedModelDto[];

  @ApiProperty({
    example: null,
    nullable: true,
    type: String,
    description: 'the active mode after the unload: null when it was unloaded (the next request loads its mode again)',
  })
  current_mode!: string | null;
}
