import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { SidecarModule } from '../sidecar/sidecar.module.js';
import { MemoryRefresher } from './memory-refresher.service.js';

@Module({
  imports: [RegistryModule, SidecarModule],
  providers: [MemoryRefresher],
  exports: [MemoryRefresher],
})
export class MemoryModule {}
