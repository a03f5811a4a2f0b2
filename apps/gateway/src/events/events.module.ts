import { Module } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ModesModule } from '../modes/modes.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { EventBridge } from './event-bridge.service.js';
import { EventBus } from './event-bus.js';
import { EventStreams } from './event-streams.service.js';
import { EventsController } from './events.controller.js';

/** The gateway's one event bus, GET /api/events, the SSE writer every stream uses, and the bridge of older producers. */
@Module({
  imports: [RegistryModule, ModelHostModule, ModesModule],
  controllers: [EventsController],
  providers: [
    {
      provide: EventBus,
      inject: [APP_CONFIG],
      // Ids from the boot time in ms: see EventBusOptions.firstId.
      useFactory: (config: AppConfig) => new EventBus({ capacity: config.eventsBuffer, firstId: Date.now() }),
    },
    EventStreams,
    EventBridge,
  ],
  exports: [EventBus, EventStreams],
})
export class EventsModule {}
