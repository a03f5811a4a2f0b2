import { Module, RequestMethod, type MiddlewareConsumer, type NestModule } from '@nestjs/common';

import { JobEvents } from '../queue/job.events.js';
import { QueueModule } from '../queue/queue.module.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { ModelEvents } from '../registry/model.events.js';
import { RegistryModule } from '../registry/registry.module.js';
import { RegistryService } from '../registry/registry.service.js';
import { HttpMetricsMiddleware } from './http-metrics.middleware.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

/** GET /metrics (README "Metrics") and the middleware that counts HTTP requests for it. */
@Module({
  imports: [QueueModule, RegistryModule],
  controllers: [MetricsController],
  providers: [
    {
      provide: MetricsService,
      inject: [JobEvents, ModelEvents, RegistryService, WorkerPool],
      useFactory: (jobs: JobEvents, models: ModelEvents, registry: RegistryService, pool: WorkerPool) =>
        new MetricsService(
          {
            onJobEvent: (listener) => jobs.on(listener),
            onModelEvent: (listener) => models.on(listener),
            lastMemory: () => registry.lastMemory,
            residentModels: () => registry.residentModels(),
            modelHostState: () => pool.connection.state,
          },
          { defaultMetrics: true },
        ),
    },
    HttpMetricsMiddleware,
  ],
})
export class MetricsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // Every path, matched or not (the same pattern nestjs-pino uses for its request logs).
    consumer.apply(HttpMetricsMiddleware).forRoutes({ path: '{/*splat}', method: RequestMethod.ALL });
  }
}
