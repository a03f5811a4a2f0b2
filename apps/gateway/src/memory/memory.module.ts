import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { MemoryRefresher } from './memory-refresher.service.js';

@Module({
  imports: [RegistryModule, ModelHostModule],
  providers: [MemoryRefresher],
  exports: [MemoryRefresher],
})
export class MemoryModule {}
