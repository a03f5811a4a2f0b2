import { Global, Inject, Logger, Module, type OnApplicationBootstrap } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeys } from './api-keys.js';
import { HostCheck } from './host-check.js';
import { SessionController } from './session.controller.js';
import { Sessions } from './sessions.js';

@Global()
@Module({
  controllers: [SessionController],
  providers: [
    { provide: Sessions, useFactory: () => new Sessions() },
    {
      provide: ApiKeys,
      inject: [APP_CONFIG, Sessions],
      useFactory: (config: AppConfig, sessions: Sessions) => new ApiKeys(config.auth, sessions),
    },
    {
      provide: HostCheck,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new HostCheck({ listenHost: config.host, allowedHosts: config.allowedHosts }),
    },
    ApiKeyGuard,
  ],
  exports: [ApiKeys, ApiKeyGuard, HostCheck],
})
export class AuthModule implements OnApplicationBootstrap {
  constructor(
    @Inject(ApiKeys) private readonly keys: ApiKeys,
    @Inject(HostCheck) private readonly hosts: HostCheck,
  ) {}

  onApplicationBootstrap(): void {
    const logger = new Logger('Auth');
    if (this.keys.open) {
      logger.warn('API_KEY is not set: every endpoint is open to anyone who can reach this port');
      if (this.hosts.unchecked) {
        // Without a key, the Host check is what keeps a rebinding page out; with it off, nothing does.
        logger.warn(
          'ALLOWED_HOSTS is not set on a non-loopback HOST: any web page whose domain resolves to this machine ' +
            '(DNS rebinding) can use the API; set ALLOWED_HOSTS to the names clients use, or API_KEY',
        );
      }
    }
  }
}
