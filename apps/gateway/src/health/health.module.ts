import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { StatusModule } from '../status/status.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { HealthController } from './health.controller.js';
import { HealthService } from './health.service.js';

@Module({
  imports: [ModesModule, ModelHostModule, QueueModule, StatusModule],
  controllers: [HealthController],
  providers: [HealthService],
})
export class HealthModule {}
