import { Module } from '@nestjs/common';

import { EventsModule } from '../events/events.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { JobEvents } from './job.events.js';
import { JobStore } from './job.store.js';
import { WorkerPool } from './worker-pool.service.js';

@Module({
  imports: [EventsModule, ModesModule, RegistryModule, ModelHostModule],
  providers: [WorkerPool, JobStore, JobEvents],
  exports: [WorkerPool, JobStore, JobEvents],
})
export class QueueModule {}
