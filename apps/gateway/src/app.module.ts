import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';

import { ApiKeyGuard } from './auth/api-key.guard.js';
import { AuthModule } from './auth/auth.module.js';
import { RequestBodyGuard } from './common/request-body.guard.js';
import { RequestValidationPipe } from './common/validation-errors.js';
import type { AppConfig } from './config/app-config.js';
import { ConfigModule } from './config/config.module.js';
import { AllExceptionsFilter } from './errors/all-exceptions.filter.js';
import { EventsModule } from './events/events.module.js';
import { GenerationModule } from './generation/generation.module.js';
import { HealthModule } from './health/health.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { ModeSwitchModule } from './mode-switch/mode-switch.module.js';
import { LoggingModule } from './logging/logging.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { ModelsModule } from './models/models.module.js';
import { ModesModule } from './modes/modes.module.js';
import { OpenAiModule } from './openai/openai.module.js';
import { QueueModule } from './queue/queue.module.js';
import { RegistryModule } from './registry/registry.module.js';
import { ModelHostModule } from './model-host/model-host.module.js';
import { StatusModule } from './status/status.module.js';
import { WebModule } from './web/web.module.js';

@Module({})
export class AppModule {
  /** The guard, pipe and filter are providers, not main.ts calls, so a testing module built from AppModule has them too. */
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule,
        AuthModule,
        ModesModule,
        RegistryModule,
        ModelHostModule,
        EventsModule,
        QueueModule,
        GenerationModule,
        JobsModule,
        ModeSwitchModule,
        StatusModule,
        ModelsModule,
        OpenAiModule,
        HealthModule,
        MetricsModule,
        WebModule,
      ],
      // Global guards run in this order: who may call comes before what the body holds.
      providers: [
        { provide: APP_GUARD, useExisting: ApiKeyGuard },
        { provide: APP_GUARD, useClass: RequestBodyGuard },
        { provide: APP_PIPE, useClass: RequestValidationPipe },
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
      ],
    };
  }
}
