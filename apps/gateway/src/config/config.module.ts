import { DynamicModule, Module } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from './app-config.js';

@Module({})
export class ConfigModule {
  /** The configuration is read by main.ts before Nest starts, so a bad value fails fast and plainly. */
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      global: true,
      providers: [{ provide: APP_CONFIG, useValue: config }],
      exports: [APP_CONFIG],
    };
  }
}
