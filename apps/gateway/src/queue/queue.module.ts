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
      useFactory: async (config: AppConfig, store: JobStore): Promise<QueueBackend> => {
        const { queue } = config;
        if (queue.backend === 'memory') return new MemoryQueueBackend(config, store);
        // Loaded for a shared queue only: BullMQ and ioredis (their Lua scripts with them) would add some 5 MB to the
        // heap of every gateway on its own queue (measured with a heap snapshot).
        const [{ RedisJobRecords }, { RedisQueueBackend, commandConnection }] = await Promise.all([
          import('./redis-job.records.js'),
          import('./redis-queue.backend.js'),
        ]);
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
