import { Injectable } from '@nestjs/common';

import { NotReadyError } from '../errors/domain.errors.js';
import { ModesService } from '../modes/modes.service.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { SidecarRepository } from '../sidecar/sidecar.repository.js';

export interface Readiness {
  status: 'ready';
  current_mode: string | null;
}

@Injectable()
export class HealthService {
  constructor(
    private readonly modes: ModesService,
    private readonly registry: RegistryService,
    private readonly sidecar: SidecarRepository,
    private readonly pool: WorkerPool,
  ) {}

  /**
   * Ready once the default mode was loaded at start, while the sidecar answers its health check; not ready from
   * the moment a shutdown begins, so that a load balancer stops sending work before the gateway stops taking it.
   */
  async readiness(): Promise<Readiness> {
    if (this.pool.state === 'stopping') throw new NotReadyError('the server is shutting down');
    if (!this.registry.ready) {
      throw new NotReadyError(`the default mode '${this.modes.config.defaultMode}' is not loaded yet`);
    }
    if (!(await this.sidecar.isServing())) throw new NotReadyError('the model host is not serving');
    return { status: 'ready', current_mode: this.registry.currentMode ?? null };
  }
}
