import { Module } from '@nestjs/common';

import { EventsModule } from '../events/events.module.js';
import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { ModelHostModule } from '../model-host/model-host.module.js';
import { KeepAliveService } from './keep-alive.service.js';
import { ModelUnloader } from './model-unloader.service.js';
import { PinSyncService } from './pin-sync.service.js';
import { PrefetchHintsService } from './prefetch-hints.service.js';
import { StaleReleaseService } from './stale-release.service.js';

/** Each mode's keep_alive and pinned (README, "Memory policy"), the unloads the gateway orders, prefetch hints. */
@Module({
  imports: [EventsModule, ModesModule, QueueModule, RegistryModule, ModelHostModule],
  providers: [ModelUnloader, KeepAliveService, PinSyncService, StaleReleaseService, PrefetchHintsService],
  exports: [ModelUnloader, KeepAliveService],
})
export class MemoryPolicyModule {}
