import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { SidecarModule } from '../sidecar/sidecar.module.js';
import { HealthController } from './health.controller.js';
import { HealthService } from './health.service.js';

@Module({
  imports: [ModesModule, RegistryModule, SidecarModule],
  controllers: [HealthController],
  providers: [HealthService],
})
export class HealthModule {}
