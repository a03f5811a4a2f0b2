import { Module } from '@nestjs/common';

import { ModelEvents } from './model.events.js';
import { RegistryService } from './registry.service.js';

@Module({
  providers: [RegistryService, ModelEvents],
  exports: [RegistryService, ModelEvents],
})
export class RegistryModule {}
