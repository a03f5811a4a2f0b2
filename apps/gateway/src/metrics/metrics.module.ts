import { Module, RequestMethod, type MiddlewareConsumer, type NestModule } from '@nestjs/common';

import { EventBus } from '../events/event-bus.js';
import { EventsModule } from '../events/events.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { HostsService } from '../model-host/hosts.service.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { HttpMetricsMiddleware } from './http-metrics.middleware.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

/** GET /metrics (README "Metrics") and the middleware that counts HTTP requests for it. */
@Module({
  imports: [EventsModule, QueueModule, RegistryModule, ModelHostModule],
  controllers: [MetricsController],
  providers: [
    {
      provide: MetricsService,
      inject: [EventBus, HostsService],
      useFactory: (bus: EventBus, hosts: HostsService) =>
        new MetricsService(
          {
            onEvent: (listener, types) => bus.subscribe(listener, types),
            hosts: () =>
              hosts.sessions.map((session) => ({
                id: session.id,
                lastMemory: session.registry.lastMemory,
                residentModels: session.registry.residentModels(),
                state: session.connection.state,
              })),
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
