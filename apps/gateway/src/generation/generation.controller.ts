import { Body, Controller, HttpCode, Post, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiGatewayTimeoutResponse,
  ApiInternalServerErrorResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';
import { RequestCaller } from '../auth/api-key.guard.js';
import type { Caller } from '../auth/api-keys.js';
import type { Response } from 'express';

import { GenerateRequestDto } from './dto/generate-request.dto.js';
import { GenerationService } from './generation.service.js';

@ApiTags('generation')
@Controller()
export class GenerationController {
  constructor(private readonly generation: GenerationService) {}

  @Post('generate')
  @HttpCode(200)
  @ApiOperation({ summary: 'Generate an image; a mode other than the active one is switched to first' })
  @ApiOkResponse({
    description: 'the PNG',
    content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
    headers: {
      'X-Mode': { description: 'the mode used', schema: { type: 'string' } },
      'X-Seed': { description: 'the seed used (random when none was given)', schema: { type: 'integer' } },
      'X-SuperRes': {
        description: 'whether super-resolution was applied',
        schema: { type: 'string', enum: ['true', 'false'] },
      },
    },
  })
  @ApiBadRequestResponse({ description: 'the body fails validation: the message names each field and why' })
  @ApiNotFoundResponse({ description: "Mode 'xyz' not found" })
  @ApiTooManyRequestsResponse({ description: 'the queue is full (QUEUE_MAX); Retry-After says when to retry' })
  @ApiInternalServerErrorResponse({ description: "the mode's files cannot be loaded: the message says which and why" })
  @ApiServiceUnavailableResponse({ description: 'the model host is down, or the device is out of memory' })
  @ApiGatewayTimeoutResponse({ description: 'Mode switch timed out, or the request waited or ran past its limit' })
  async generate(
    @Body() body: GenerateRequestDto,
    @Res() response: Response,
    @RequestCaller() caller: Caller,
  ): Promise<void> {
    const { mode, seed, image } = await this.generation.generate(body, abortedOnDisconnect(response), caller.id);
    // The PNG is one buffer already: written in one call. A StreamableFile pipes it through a stream (a few turns
    // of the event loop) and express's send() would hash it for an ETag; both cost more than the write
    // (docs/BENCHMARKS.md, gateway overhead).
    response.writeHead(200, {
      'Content-Type': 'image/png',
      'Content-Length': image.png.length,
      'X-Mode': mode,
      'X-Seed': String(seed),
      'X-SuperRes': String(image.superresApplied),
    });
    response.end(image.png);
  }
}

/** Aborts when the connection closes before the reply was sent: the client is gone, its work is waste. */
function abortedOnDisconnect(response: Response): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableEnded) controller.abort();
  });
  return controller.signal;
}
