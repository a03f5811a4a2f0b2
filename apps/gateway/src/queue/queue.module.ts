import { randomUUID } from 'node:crypto';

import { Module } from '@nestjs/common';

import { EventsModule } from '../events/events.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { JobEvents } from './job.events.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { JobStore } from './job.store.js';
import { MemoryQueueBackend } from './memory-queue.backend.js';
import { QUEUE_BACKEND, type QueueBackend } from './queue-backend.js';
import { RedisJobRecords } from './redis-job.records.js';
import { RedisQueueBackend, commandConnection } from './redis-queue.backend.js';
import { WorkerPool } from './worker-pool.service.js';

@Module({
  imports: [EventsModule, ModesModule, RegistryModule, ModelHostModule],
  providers: [
    WorkerPool,
    JobStore,
    JobEvents,
    // QUEUE_BACKEND: this gateway's own queue in memory (the default), or BullMQ on Redis shared by every gateway.
    {
      provide: QUEUE_BACKEND,
      useFactory: (config: AppConfig, store: JobStore): QueueBackend => {
        const { queue } = config;
        if (queue.backend === 'memory') return new MemoryQueueBackend(config, store);
        const redis = commandConnection(queue.url);
        const origin = `${config.gatewayId}/${randomUUID().slice(0, 8)}`;
        const records = new RedisJobRecords(store, redis, {
          prefix: queue.prefix,
          origin,
          retentionMs: config.jobRetentionMs,
        });
        const backend = new RedisQueueBackend({ ...config, ...queue }, records, redis);
        void backend.startWhenReachable();
        return backend;
      },
      inject: [APP_CONFIG, JobStore],
    },
  ],
  exports: [WorkerPool, JobStore, JobEvents],
})
export class QueueModule {}
