import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostConnection } from './model-host.connection.js';
import { sidecarEndpointProvider } from './sidecar-endpoint.provider.js';
import { SidecarProcessService } from './sidecar-process.service.js';
import { SidecarRepository } from './sidecar.repository.js';

@Module({
  imports: [RegistryModule],
  providers: [sidecarEndpointProvider, SidecarRepository, SidecarProcessService, ModelHostConnection],
  exports: [SidecarRepository, SidecarProcessService, ModelHostConnection],
})
export class SidecarModule {}
