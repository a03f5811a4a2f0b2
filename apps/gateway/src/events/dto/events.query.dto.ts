import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, IsIn } from 'class-validator';

import { IsOmittable } from '../../common/validation-errors.js';
import { EVENT_TYPES } from '../event.types.js';

/** Every non-empty start of an event type: what `?types=` accepts (`job.`, `model.load`, `memory`, `host.state`). */
const TYPE_PREFIXES = [...new Set(EVENT_TYPES.flatMap((type) => [...type].map((_, i) => type.slice(0, i + 1))))];

/** The query of GET /api/events. */
export class EventsQueryDto {
  @ApiPropertyOptional({
    type: String,
    example: 'job.,model.',
    description:
      'comma-separated type prefixes: only events whose type starts with one of them (none: every event). ' +
      `The types: ${EVENT_TYPES.join(', ')}`,
  })
  @IsOmittable()
  @ArrayMaxSize(EVENT_TYPES.length, { message: `must list at most ${EVENT_TYPES.length} prefixes` })
  @IsIn(TYPE_PREFIXES, {
    each: true,
    message: `must be comma-separated prefixes of event types (${EVENT_TYPES.join(', ')})`,
  })
  // `?types=job.,model.` and `?types=job.&types=model.` alike.
  @Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' || Array.isArray(value)
      ? [value].flat().flatMap((item: unknown) => (typeof item === 'string' ? item.split(',') : [item]))
      : value,
  )
  types?: string[];
}
