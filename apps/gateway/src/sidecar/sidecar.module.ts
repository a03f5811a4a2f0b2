import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { sidecarEndpointProvider } from './sidecar-endpoint.provider.js';
import { SidecarProcessService } from './sidecar-process.service.js';
import { SidecarRepository } from './sidecar.repository.js';

@Module({
  imports: [RegistryModule],
  providers: [sidecarEndpointProvider, SidecarRepository, SidecarProcessService],
  exports: [SidecarRepository, SidecarProcessService],
})
export class SidecarModule {}
