import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { SidecarModule } from '../sidecar/sidecar.module.js';
import { StartupService } from './startup.service.js';

@Module({
  imports: [ModesModule, QueueModule, RegistryModule, SidecarModule],
  providers: [StartupService],
})
export class StartupModule {}
