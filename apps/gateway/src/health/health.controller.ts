import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';

import { Public } from '../auth/access.decorator.js';
import { HealthService, type Readiness } from './health.service.js';

/** Probes must answer without a key: orchestrators do not hold one. */
@Public()
@ApiTags('health')
@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  /** Liveness: the process answers. */
  @Get('health')
  @ApiOperation({ summary: 'Liveness: the process answers' })
  @ApiOkResponse({ schema: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: 503 until the model host serves and the default mode is resident. */
  @Get('ready')
  @ApiOperation({ summary: 'Readiness: the model host serves and a mode is loaded' })
  @ApiOkResponse({
    schema: {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['ready'] },
        current_mode: { type: 'string', nullable: true },
      },
    },
  })
  @ApiServiceUnavailableResponse({ description: 'not ready yet, or the model host is down' })
  ready(): Readiness {
    return this.health.readiness();
  }
}
