import { Module } from '@nestjs/common';

import { MemoryPolicyModule } from '../memory-policy/memory-policy.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { StatusController } from './status.controller.js';
import { StatusService } from './status.service.js';

@Module({
  imports: [MemoryPolicyModule, ModesModule, QueueModule, RegistryModule, ModelHostModule],
  controllers: [StatusController],
  providers: [StatusService],
  exports: [StatusService],
})
export class StatusModule {}
