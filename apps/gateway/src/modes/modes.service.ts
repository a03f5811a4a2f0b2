import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ModeNotFoundError } from '../errors/domain.errors.js';
import { loadModesConfig } from './modes-config.loader.js';
import type { ModesConfig, ResolvedMode } from './mode.types.js';

/**
 * The ModeConfigManager: holds the current modes configuration as one
 * immutable snapshot, so a reload can swap it in a single assignment while
 * work already queued keeps the modes it resolved.
 */
@Injectable()
export class ModesService implements OnModuleInit {
  private readonly logger = new Logger(ModesService.name);
  private snapshot!: ModesConfig;

  constructor(@Inject(APP_CONFIG) private readonly appConfig: AppConfig) {}

  /** Loaded here rather than in the constructor so a bad file fails app start with just its message. */
  onModuleInit(): void {
    this.snapshot = loadModesConfig(this.appConfig);
    if (this.snapshot.legacy) {
      this.logger.warn(
        `${this.appConfig.modesFile} not found: serving the single mode '${this.snapshot.defaultMode}' from the ` +
          'deprecated MODEL_ROOT/MODEL variables; write a modes.yaml to define modes',
      );
    }
    this.logger.log(
      `${this.snapshot.modes.size} mode(s) from ${this.snapshot.source}: ${[...this.snapshot.modes.keys()].join(', ')} ` +
        `(default '${this.snapshot.defaultMode}')`,
    );
  }

  get config(): ModesConfig {
    return this.snapshot;
  }

  /** @throws ModeNotFoundError */
  getMode(name: string): ResolvedMode {
    const mode = this.snapshot.modes.get(name);
    if (!mode) throw new ModeNotFoundError(name);
    return mode;
  }

  get defaultMode(): ResolvedMode {
    return this.getMode(this.snapshot.defaultMode);
  }
}
