import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';

import type { ModesConfig } from '../modes/mode.types.js';
import { ModesService, type ReloadDetails } from '../modes/modes.service.js';
import { HostsService } from '../model-host/hosts.service.js';
import { ModelUnloader } from './model-unloader.service.js';

/**
 * A mode whose definition changed loads under a new key on its next use; its old pipeline would stay resident, a
 * second copy no job will use again. On each reload that changes modes, the old keys are released on every host
 * that holds them, in that host's turn (a job behind the work queued there, so one still running finishes on it
 * first): to the RAM tier when there is room, else freed. Status calls them `stale` meanwhile.
 */
@Injectable()
export class StaleReleaseService implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger(StaleReleaseService.name);
  /** The configuration before the reload: where the changed modes' old keys are. */
  private previous: ModesConfig | undefined;

  constructor(
    private readonly modes: ModesService,
    private readonly hosts: HostsService,
    private readonly unloader: ModelUnloader,
  ) {}

  onModuleInit(): void {
    this.modes.onReload((config, details) => this.onReload(config, details));
  }

  onApplicationBootstrap(): void {
    this.previous = this.modes.config;
  }

  private onReload(config: ModesConfig, { diff }: ReloadDetails): void {
    const previous = this.previous;
    this.previous = config;
    if (!previous) return;
    const oldKeys = new Set([...diff.changed, ...diff.removed].flatMap((name) => previous.modes.get(name)?.key ?? []));
    for (const mode of config.modes.values()) oldKeys.delete(mode.key);
    if (oldKeys.size === 0) return;
    for (const host of this.hosts.accepting()) {
      const keys = host.registry
        .residentModels()
        .filter((entry) => entry.tier === 'device' && oldKeys.has(entry.key))
        .map((entry) => entry.key);
      if (keys.length === 0) continue;
      this.logger.log(`releasing ${keys.join(', ')} on ${host.id}: their modes changed in modes.yaml`);
      this.unloader.submitOn([host], { keys }, 'stale').catch((error: Error) =>
        // Not lost: the model host's LRU evicts an unused key when it needs the room.
        this.logger.warn(`could not release ${keys.join(', ')} on ${host.id}: ${error.message}`),
      );
    }
  }
}
