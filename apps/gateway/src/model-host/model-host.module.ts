import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { HostsService } from './hosts.service.js';
import { ModelHostFactory } from './model-host.factory.js';

@Module({
  imports: [RegistryModule],
  providers: [ModelHostFactory, HostsService],
  exports: [HostsService],
})
export class ModelHostModule {}
