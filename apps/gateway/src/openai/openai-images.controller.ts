import { Body, Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
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
import type { Request, Response } from 'express';

import { RequestCaller } from '../auth/api-key.guard.js';
import type { Caller } from '../auth/api-keys.js';
import { HostCheck } from '../auth/host-check.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ImageGenerationRequestDto } from './dto/image-generation-request.dto.js';
import { ImagesResponseDto } from './dto/images-response.dto.js';
import { OpenAiImagesService } from './openai-images.service.js';
import { publicBaseUrl } from './public-url.js';

@ApiTags('openai')
@Controller('v1/images')
export class OpenAiImagesController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly images: OpenAiImagesService,
    @Inject(HostCheck) private readonly hosts: HostCheck,
  ) {}

  @Post('generations')
  @HttpCode(200)
  @ApiOperation({
    summary: "OpenAI's image generation: n images of a mode, as base64 PNGs or URLs of their jobs' images",
  })
  @ApiOkResponse({ type: ImagesResponseDto })
  @ApiBadRequestResponse({ description: 'the body fails validation: `param` names the first field, the message each' })
  @ApiNotFoundResponse({ description: 'the model is not a mode (`model_not_found`)' })
  @ApiTooManyRequestsResponse({ description: 'the queue has no room for n more jobs (QUEUE_MAX); Retry-After' })
  @ApiInternalServerErrorResponse({ description: "the mode's files cannot be loaded" })
  @ApiServiceUnavailableResponse({ description: 'the model host is down, or the device is out of memory' })
  @ApiGatewayTimeoutResponse({ description: 'Mode switch timed out, or a job waited or ran past its limit' })
  generate(
    @Body() body: ImageGenerationRequestDto,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
    @RequestCaller() caller: Caller,
  ): Promise<ImagesResponseDto> {
    // Checked before any job is queued: a URL that cannot be built fails the request while it costs nothing.
    const base = body.response_format === 'url' ? publicBaseUrl(request, this.config.publicUrl, this.hosts) : undefined;
    const imageUrl = (jobId: string): string => `${base}/api/jobs/${encodeURIComponent(jobId)}/image`;
    return this.images.generate(body, imageUrl, abortedOnDisconnect(response), caller.id);
  }
}

/** Aborts when the connection closes before the reply was sent: the client is gone, its jobs are waste. */
function abortedOnDisconnect(response: Response): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableEnded) controller.abort();
  });
  return controller.signal;
}
