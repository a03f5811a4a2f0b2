import { Module } from '@nestjs/common';

import { EventsModule } from '../events/events.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { JobEvents } from './job.events.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { JobStore } from './job.store.js';
import { MemoryQueueBackend } from './memory-queue.backend.js';
import { QUEUE_BACKEND } from './queue-backend.js';
import { WorkerPool } from './worker-pool.service.js';

@Module({
  imports: [EventsModule, ModesModule, RegistryModule, ModelHostModule],
  providers: [
    WorkerPool,
    JobStore,
    JobEvents,
    // The in-memory queue (one gateway); a shared backend (issue 19: BullMQ on Redis) is provided here instead.
    {
      provide: QUEUE_BACKEND,
      useFactory: (config: AppConfig, store: JobStore) => new MemoryQueueBackend(config, store),
      inject: [APP_CONFIG, JobStore],
    },
  ],
  exports: [WorkerPool, JobStore, JobEvents],
})
export class QueueModule {}
