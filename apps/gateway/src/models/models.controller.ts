import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';

import { Admin } from '../auth/access.decorator.js';
import { ModelInventoryDto } from './dto/model-file.dto.js';
import { UNLOAD_MODELS_SCHEMA, UnloadModelsDto, UnloadReplyDto } from './dto/unload-models.dto.js';
import { ModelsService } from './models.service.js';

@ApiTags('models')
@Controller('api/models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get()
  @ApiOperation({
    summary: "The checkpoints, LoRAs and upscalers under the modes file's model roots, as the model host sees them",
  })
  @ApiOkResponse({ type: ModelInventoryDto })
  @ApiServiceUnavailableResponse({ description: 'the model host is down or not reachable' })
  list(): Promise<ModelInventoryDto> {
    return this.models.inventory();
  }

  @Post('unload')
  @Admin()
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Unload one mode, or every mode (pinned ones included), from the device and the RAM tier; queued behind the ' +
      'running work, answers once done with what was freed',
  })
  @ApiBody({ schema: UNLOAD_MODELS_SCHEMA })
  @ApiOkResponse({ type: UnloadReplyDto })
  @ApiBadRequestResponse({ description: 'the body fails validation' })
  @ApiNotFoundResponse({ description: "Mode 'xyz' not found" })
  @ApiTooManyRequestsResponse({ description: 'the queue is full (QUEUE_MAX); Retry-After says when to retry' })
  @ApiServiceUnavailableResponse({ description: 'the model host is down' })
  unload(@Body() body: UnloadModelsDto): Promise<UnloadReplyDto> {
    return this.models.unload(body.mode);
  }
}
