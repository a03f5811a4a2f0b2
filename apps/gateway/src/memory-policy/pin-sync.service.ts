import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';

import type { ModesConfig } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import { CustomJob } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { ModelHostClient } from '../model-host/model-host.client.js';

/** The handler of the job that tells the model host about changed pins: args `[modes]`. */
export const PIN_SYNC_HANDLER = 'models.sync-pins';

/**
 * The model host learns whether a mode is pinned with each load of it. A reload that pins or unpins a mode whose
 * pipeline is on the device (the active one is never loaded again while it stays active) sends that mode's load
 * again, in the queue's turn: the key is resident, so the load only updates the pin.
 */
@Injectable()
export class PinSyncService implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger(PinSyncService.name);
  /** Each mode's pin as last seen; read once the modes file is loaded. */
  private pinned = new Map<string, boolean>();

  constructor(
    private readonly pool: WorkerPool,
    private readonly modes: ModesService,
    private readonly registry: RegistryService,
    private readonly modelHost: ModelHostClient,
  ) {}

  onModuleInit(): void {
    this.pool.registerHandler(PIN_SYNC_HANDLER, (modes: readonly string[]) => this.sync(modes));
    this.modes.onReload((config) => this.onReload(config));
  }

  onApplicationBootstrap(): void {
    this.pinned = pinsOf(this.modes.config);
  }

  private onReload(config: ModesConfig): void {
    const next = pinsOf(config);
    const changed = [...next].filter(([mode, pinned]) => (this.pinned.get(mode) ?? false) !== pinned);
    this.pinned = next;
    if (changed.length === 0) return;
    try {
      this.pool.submitJob(new CustomJob({ handler: PIN_SYNC_HANDLER, args: [changed.map(([mode]) => mode)] }));
    } catch (error) {
      // Not lost: the next load of each mode carries its pin.
      this.logger.warn(`could not queue the model host's pin update: ${(error as Error).message}`);
    }
  }

  /** In the job's turn: loads again each mode whose current key is on the device. */
  private async sync(names: readonly string[]): Promise<void> {
    const onDevice = new Set(
      this.registry
        .residentModels()
        .filter((entry) => entry.tier === 'device')
        .map((entry) => entry.key),
    );
    for (const name of names) {
      const mode = this.modes.config.modes.get(name);
      if (!mode || !onDevice.has(mode.key)) continue; // not on the device: its next load carries the pin
      await this.modelHost.load(mode);
      this.logger.log(`mode '${name}' ${mode.pinned ? 'pinned' : 'unpinned'} on the model host`);
    }
  }
}

function pinsOf(config: ModesConfig): Map<string, boolean> {
  return new Map([...config.modes.values()].map((mode) => [mode.name, mode.pinned]));
}
