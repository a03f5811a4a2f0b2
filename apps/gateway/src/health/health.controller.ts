import { Controller, Get } from '@nestjs/common';

import { HealthService, type Readiness } from './health.service.js';

@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  /** Liveness: the process answers. */
  @Get('health')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: 503 until the sidecar serves and the default mode is resident. */
  @Get('ready')
  ready(): Promise<Readiness> {
    return this.health.readiness();
  }
}
