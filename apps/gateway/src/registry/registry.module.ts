import { Module } from '@nestjs/common';

import { ModelEvents } from './model.events.js';

/** The model events every host's registry tells; the registries themselves are per host (HostSession). */
@Module({
  providers: [ModelEvents],
  exports: [ModelEvents],
})
export class RegistryModule {}
