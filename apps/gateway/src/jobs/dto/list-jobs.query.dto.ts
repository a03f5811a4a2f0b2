import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, Max, Min } from 'class-validator';

import { QueryInt } from '../../common/query-int.js';
import { IsOmittable } from '../../common/validation-errors.js';
import type { JobState } from '../../queue/job-record.types.js';

export const JOB_PAGE_MAX = 100;
export const JOB_PAGE_DEFAULT = 20;
const STATES: JobState[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];

/** The query of GET /api/jobs. */
export class ListJobsQueryDto {
  @ApiPropertyOptional({ enum: STATES, description: 'only jobs in this state' })
  @IsOmittable()
  @IsIn(STATES, { message: `must be one of ${STATES.join(', ')}` })
  state?: JobState;

  @ApiPropertyOptional({ minimum: 1, maximum: JOB_PAGE_MAX, default: JOB_PAGE_DEFAULT })
  @Max(JOB_PAGE_MAX, { message: `must be at most ${JOB_PAGE_MAX}` })
  @Min(1, { message: 'must be at least 1' })
  @IsInt({ message: 'must be an integer' })
  @IsOmittable()
  @QueryInt()
  limit?: number;
}
