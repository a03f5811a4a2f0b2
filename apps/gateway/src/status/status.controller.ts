import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';

import { ModelsStatusDto, VramReplyDto } from './dto/status.dto.js';
import { StatusService } from './status.service.js';

@ApiTags('models')
@Controller('api')
export class StatusController {
  constructor(private readonly status: StatusService) {}

  @Get('models/status')
  @ApiOperation({ summary: 'The current mode, the queue, and the memory figures with the resident models' })
  @ApiOkResponse({ type: ModelsStatusDto })
  @ApiServiceUnavailableResponse({ description: 'the model host is down or not reachable' })
  models(): Promise<ModelsStatusDto> {
    return this.status.status();
  }

  @Get('vram')
  @ApiOperation({ summary: "The model host's memory figures as last read (`as_of`), with the resident models" })
  @ApiOkResponse({ type: VramReplyDto })
  @ApiServiceUnavailableResponse({ description: 'the model host is down or not reachable' })
  vram(): Promise<VramReplyDto> {
    return this.status.vram();
  }
}
