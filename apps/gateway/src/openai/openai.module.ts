import { Module } from '@nestjs/common';

import { GenerationModule } from '../generation/generation.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { OpenAiImagesController } from './openai-images.controller.js';
import { OpenAiImagesService } from './openai-images.service.js';
import { OpenAiModelsController } from './openai-models.controller.js';
import { OpenAiModelsService } from './openai-models.service.js';

/**
 * OpenAI's images API under /v1 (README "OpenAI-compatible API"): its generations become jobs of the job engine,
 * its models are the modes. Its errors take OpenAI's body (errors/error-body.renderer.ts).
 */
@Module({
  imports: [ModesModule, GenerationModule],
  controllers: [OpenAiImagesController, OpenAiModelsController],
  providers: [OpenAiImagesService, OpenAiModelsService],
})
export class OpenAiModule {}
