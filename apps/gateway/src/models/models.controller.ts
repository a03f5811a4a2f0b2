import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';

import { ModelInventoryDto } from './dto/model-file.dto.js';
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
}
