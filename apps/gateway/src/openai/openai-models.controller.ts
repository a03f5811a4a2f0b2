import { Controller, Get, Param } from '@nestjs/common';
import { ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';

import { ModelDto, ModelListDto } from './dto/model.dto.js';
import { OpenAiModelsService } from './openai-models.service.js';

@ApiTags('openai')
@Controller('v1/models')
export class OpenAiModelsController {
  constructor(private readonly models: OpenAiModelsService) {}

  @Get()
  @ApiOperation({ summary: "The modes of modes.yaml in OpenAI's model list shape" })
  @ApiOkResponse({ type: ModelListDto })
  list(): ModelListDto {
    return this.models.list();
  }

  @Get(':model')
  @ApiOperation({ summary: "One mode in OpenAI's model shape" })
  @ApiParam({ name: 'model', description: 'a mode name', example: 'sdxl-general' })
  @ApiOkResponse({ type: ModelDto })
  @ApiNotFoundResponse({ description: 'no mode has this name (`model_not_found`)' })
  get(@Param('model') model: string): ModelDto {
    return this.models.get(model);
  }
}
