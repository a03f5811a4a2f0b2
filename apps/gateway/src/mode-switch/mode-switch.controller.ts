import { Body, Controller, HttpCode, Post, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
} from '@nestjs/swagger';
import type { Response } from 'express';

import { Admin } from '../auth/access.decorator.js';
import { SwitchModeDto, SwitchQueuedDto } from './dto/switch-mode.dto.js';
import { ModeSwitchService } from './mode-switch.service.js';

@ApiTags('modes')
@Controller('api/modes')
export class ModeSwitchController {
  constructor(private readonly switches: ModeSwitchService) {}

  @Post('switch')
  @Admin()
  @HttpCode(200)
  @ApiOperation({ summary: 'Queue a switch to another mode behind the pending jobs; answers at once' })
  @ApiOkResponse({
    type: SwitchQueuedDto,
    headers: { Location: { description: 'the switch job: /api/jobs/{id}', schema: { type: 'string' } } },
  })
  @ApiBadRequestResponse({ description: 'the body fails validation' })
  @ApiNotFoundResponse({ description: "Mode 'xyz' not found" })
  @ApiConflictResponse({ description: 'the server runs the legacy MODEL_ROOT/MODEL setup: no modes to switch' })
  @ApiTooManyRequestsResponse({ description: 'the queue is full (QUEUE_MAX); Retry-After says when to retry' })
  @ApiServiceUnavailableResponse({ description: 'the model host is down' })
  async switch(@Body() body: SwitchModeDto, @Res({ passthrough: true }) response: Response): Promise<SwitchQueuedDto> {
    const queued = await this.switches.switchMode(body.mode);
    response.setHeader('Location', `/api/jobs/${queued.id}`);
    return queued;
  }
}
