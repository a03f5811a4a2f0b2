import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostConnection } from './model-host.connection.js';
import { modelHostEndpointProvider } from './model-host-endpoint.provider.js';
import { ModelHostProcessService } from './model-host-process.service.js';
import { ModelHostClient } from './model-host.client.js';

@Module({
  imports: [RegistryModule],
  providers: [modelHostEndpointProvider, ModelHostClient, ModelHostProcessService, ModelHostConnection],
  exports: [ModelHostClient, ModelHostProcessService, ModelHostConnection],
})
export class ModelHostModule {}
