import { Module } from '@nestjs/common';

import { MemoryModule } from '../memory/memory.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { StatusController } from './status.controller.js';
import { StatusService } from './status.service.js';

@Module({
  imports: [MemoryModule, ModesModule, QueueModule, RegistryModule],
  controllers: [StatusController],
  providers: [StatusService],
})
export class StatusModule {}
