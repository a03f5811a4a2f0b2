import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ModesService } from '../modes/modes.service.js';
import { ModeSwitchJob } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { SidecarProcessService } from '../sidecar/sidecar-process.service.js';

/**
 * Brings the server to ready: starts the sidecar (unless SIDECAR_ADDR names
 * one), waits until it serves, then loads the default mode through the pool.
 * It runs in the background so that HTTP (and /health) answers meanwhile;
 * /ready says when it is done.
 */
@Injectable()
export class StartupService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(StartupService.name);
  private readonly stop = new AbortController();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    private readonly sidecarProcess: SidecarProcessService,
    private readonly pool: WorkerPool,
    private readonly registry: RegistryService,
  ) {}

  onApplicationBootstrap(): void {
    void this.start();
  }

  onModuleDestroy(): void {
    this.stop.abort();
  }

  private async start(): Promise<void> {
    const mode = this.modes.config.defaultMode;
    try {
      this.sidecarProcess.start();
      await this.sidecarProcess.waitForReady(this.config.sidecarStartupTimeoutMs, this.stop.signal);
      this.logger.log(`model host serving; loading the default mode '${mode}'`);
      await this.pool.submitJob(new ModeSwitchJob(mode)).result();
      this.registry.markStartedUp();
      this.logger.log(`ready: default mode '${mode}' loaded`);
    } catch (error) {
      if (this.stop.signal.aborted) return;
      this.logger.error(`startup failed, /ready stays 503: ${(error as Error).message}`);
    }
  }
}
