import { Body, Controller, HttpCode, Post, Res, StreamableFile } from '@nestjs/common';
import type { Response } from 'express';

import { GenerateRequestDto } from './dto/generate-request.dto.js';
import { GenerationService } from './generation.service.js';

@Controller()
export class GenerationController {
  constructor(private readonly generation: GenerationService) {}

  @Post('generate')
  @HttpCode(200)
  async generate(
    @Body() body: GenerateRequestDto,
    @Res({ passthrough: true }) response: Response,
  ): Promise<StreamableFile> {
    const { mode, seed, image } = await this.generation.generate(body, abortedOnDisconnect(response));
    response.set({ 'X-Mode': mode, 'X-Seed': String(seed), 'X-SuperRes': String(image.superresApplied) });
    return new StreamableFile(image.png, { type: 'image/png', length: image.png.length });
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
