import { Global, Inject, Logger, Module, type OnApplicationBootstrap } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeys } from './api-keys.js';

@Global()
@Module({
  providers: [
    { provide: ApiKeys, inject: [APP_CONFIG], useFactory: (config: AppConfig) => new ApiKeys(config.auth) },
    ApiKeyGuard,
  ],
  exports: [ApiKeys, ApiKeyGuard],
})
export class AuthModule implements OnApplicationBootstrap {
  constructor(@Inject(ApiKeys) private readonly keys: ApiKeys) {}

  onApplicationBootstrap(): void {
    if (this.keys.open) {
      new Logger('Auth').warn('API_KEY is not set: every endpoint is open to anyone who can reach this port');
    }
  }
}
