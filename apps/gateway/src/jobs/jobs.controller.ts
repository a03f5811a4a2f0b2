import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res, StreamableFile } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiForbiddenResponse,
  ApiGoneResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';
import { RequestCaller } from '../auth/api-key.guard.js';
import type { Caller } from '../auth/api-keys.js';
import type { Response } from 'express';

import { GenerateRequestDto } from '../generation/dto/generate-request.dto.js';
import type { JobRecord } from '../queue/job-record.types.js';
import { JobDto, JobListDto } from './dto/job.dto.js';
import { ListJobsQueryDto } from './dto/list-jobs.query.dto.js';
import { JobsService } from './jobs.service.js';

const NOT_FOUND = 'no job has this id (or it is past JOB_RETENTION_MS / JOB_RETENTION_MAX)';

@ApiTags('jobs')
@Controller('api/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Queue a generation (the POST /generate body) as a job that runs whether or not the client stays',
  })
  @ApiAcceptedResponse({
    type: JobDto,
    description: 'the job, queued',
    headers: { Location: { description: '/api/jobs/{id}', schema: { type: 'string' } } },
  })
  @ApiNotFoundResponse({ description: "Mode 'xyz' not found" })
  @ApiTooManyRequestsResponse({ description: 'the queue is full (QUEUE_MAX); Retry-After says when to retry' })
  @ApiServiceUnavailableResponse({ description: 'the model host is down, or the server is shutting down' })
  async create(
    @Body() body: GenerateRequestDto,
    @Res({ passthrough: true }) response: Response,
    @RequestCaller() caller: Caller,
  ): Promise<JobRecord> {
    const job = await this.jobs.submit(body, caller);
    response.location(`/api/jobs/${job.id}`);
    return job;
  }

  @Get()
  @ApiOperation({
    summary:
      'Recent jobs, newest first: all of them to an admin key (or when no ADMIN_API_KEY is set), else the ' +
      "caller's own",
  })
  @ApiOkResponse({ type: JobListDto })
  @ApiBadRequestResponse({ description: 'state or limit is invalid' })
  async list(@Query() query: ListJobsQueryDto, @RequestCaller() caller: Caller): Promise<{ jobs: JobRecord[] }> {
    return { jobs: await this.jobs.list(query.state, query.limit, caller) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One job: its state, position, progress, times and the switch its turn included' })
  @ApiOkResponse({ type: JobDto })
  @ApiNotFoundResponse({ description: NOT_FOUND })
  get(@Param('id') id: string): Promise<JobRecord> {
    return this.jobs.get(id);
  }

  @Get(':id/events')
  @ApiOperation({
    summary:
      'Server-sent events: `state` at once, then `started`, `switching`, one `progress` per denoising step, and ' +
      'exactly one final `completed`, `failed` or `cancelled`; then the stream ends. A job already ended gets ' +
      'only its final event. Comment lines (`: heartbeat`) keep an idle stream open.',
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({
    description: 'each event: `event: <type>` and `data: <JSON>` (the job record; `progress`: id, step, total_steps)',
    content: {
      'text/event-stream': {
        schema: {
          type: 'object',
          description: 'one event',
          required: ['event', 'data'],
          properties: {
            event: {
              type: 'string',
              enum: ['state', 'queued', 'started', 'switching', 'progress', 'completed', 'failed', 'cancelled'],
            },
            data: { type: 'string', description: 'JSON' },
          },
        },
      },
    },
  })
  @ApiNotFoundResponse({ description: NOT_FOUND })
  events(@Param('id') id: string, @Res() response: Response): Promise<void> {
    return this.jobs.stream(id, response);
  }

  @Get(':id/image')
  @ApiOperation({ summary: "A completed generation's PNG" })
  @ApiOkResponse({
    description: 'the PNG',
    content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
    headers: {
      'X-Mode': { description: 'the mode used', schema: { type: 'string' } },
      'X-Seed': { description: 'the seed used', schema: { type: 'integer' } },
      'X-SuperRes': { description: 'whether super-resolution was applied', schema: { type: 'string' } },
    },
  })
  @ApiNotFoundResponse({ description: NOT_FOUND })
  @ApiConflictResponse({ description: 'the job has not completed (or made no image)' })
  @ApiGoneResponse({ description: 'the image is no longer kept (JOB_RESULTS_MAX_BYTES)' })
  async image(@Param('id') id: string, @Res({ passthrough: true }) response: Response): Promise<StreamableFile> {
    const image = await this.jobs.image(id);
    response.set({ 'X-Mode': image.mode, 'X-Seed': String(image.seed), 'X-SuperRes': String(image.superres) });
    return new StreamableFile(image.png, { type: 'image/png', length: image.png.length });
  }

  @Delete(':id')
  @ApiOperation({
    summary: 'Cancel a job: a queued one ends `cancelled` at once, a running one at its next denoising step',
  })
  @ApiOkResponse({ type: JobDto, description: 'the job as it is now (a running one is still `running`)' })
  @ApiNotFoundResponse({ description: NOT_FOUND })
  @ApiConflictResponse({ description: 'the job has already ended' })
  @ApiForbiddenResponse({ description: "another key's job, or the server's or an admin's work, to a plain key" })
  cancel(@Param('id') id: string, @RequestCaller() caller: Caller): Promise<JobRecord> {
    return this.jobs.cancel(id, caller);
  }
}
