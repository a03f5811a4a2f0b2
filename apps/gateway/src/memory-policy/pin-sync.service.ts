import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';

import type { ModesConfig } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import { CustomJob, onHost } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';

/** The handler of the job that tells the model host about changed pins: args `[modes]`. */
export const PIN_SYNC_HANDLER = 'models.sync-pins';

/**
 * A model host learns whether a mode is pinned with each load of it. A reload that pins or unpins a mode whose
 * pipeline is on the device (the active one is never loaded again while it stays active) sends that mode's load
 * again on each host, in its turn: the key is resident, so the load only updates the pin.
 */
@Injectable()
export class PinSyncService implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger(PinSyncService.name);
  /** Each mode's pin as last seen; read once the modes file is loaded. */
  private pinned = new Map<string, boolean>();

  constructor(
    private readonly pool: WorkerPool,
    private readonly modes: ModesService,
    private readonly hosts: HostsService,
  ) {}

  onModuleInit(): void {
    this.pool.registerHandler(
      PIN_SYNC_HANDLER,
      onHost((host, modes: readonly string[]) => this.sync(host, modes)),
    );
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
    void this.queueSync(changed.map(([mode]) => mode));
  }

  private async queueSync(modes: readonly string[]): Promise<void> {
    try {
      for (const host of this.hosts.accepting()) {
        await this.pool.enqueue(new CustomJob({ handler: PIN_SYNC_HANDLER, args: [modes], host: host.id }));
      }
    } catch (error) {
      // Not lost: the next load of each mode carries its pin.
      this.logger.warn(`could not queue the model host's pin update: ${(error as Error).message}`);
    }
  }

  /** In the job's turn on `host`: loads again each mode whose current key is on its device. */
  private async sync(host: HostSession, names: readonly string[]): Promise<void> {
    const onDevice = new Set(
      host.registry
        .residentModels()
        .filter((entry) => entry.tier === 'device')
        .map((entry) => entry.key),
    );
    for (const name of names) {
      const mode = this.modes.config.modes.get(name);
      if (!mode || !onDevice.has(mode.key)) continue; // not on the device: its next load carries the pin
      await host.client.load(mode);
      this.logger.log(`mode '${name}' ${mode.pinned ? 'pinned' : 'unpinned'} on model host ${host.id}`);
    }
  }
}

function pinsOf(config: ModesConfig): Map<string, boolean> {
  return new Map([...config.modes.values()].map((mode) => [mode.name, mode.pinned]));
}
