import { Module } from '@nestjs/common';

import { MemoryPolicyModule } from '../memory-policy/memory-policy.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { StatusModule } from '../status/status.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { ModelsController } from './models.controller.js';
import { ModelsService } from './models.service.js';

@Module({
  imports: [MemoryPolicyModule, ModesModule, ModelHostModule, StatusModule],
  controllers: [ModelsController],
  providers: [ModelsService],
})
export class ModelsModule {}
