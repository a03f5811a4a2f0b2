import { Injectable } from '@nestjs/common';

import { NotReadyError } from '../errors/domain.errors.js';
import { ModesService } from '../modes/modes.service.js';
import { RegistryService } from '../registry/registry.service.js';
import { ModelHostConnection } from '../model-host/model-host.connection.js';

export interface Readiness {
  status: 'ready';
  current_mode: string | null;
}

@Injectable()
export class HealthService {
  constructor(
    private readonly modes: ModesService,
    private readonly registry: RegistryService,
    private readonly connection: ModelHostConnection,
  ) {}

  /**
   * From the model host connection's state, asking the model host nothing: ready while it serves (the default
   * mode was loaded at start, and its health check, watched by the connection, says it serves); not ready from
   * the moment a shutdown begins, so that a load balancer stops sending work before the gateway stops taking it.
   */
  readiness(): Readiness {
    switch (this.connection.state) {
      case 'stopping':
        throw new NotReadyError('the server is shutting down');
      case 'lost':
      case 'recovering':
        throw new NotReadyError('the model host is not serving');
      case 'starting': {
        const failure = this.connection.startupFailure;
        const mode = this.modes.config.defaultMode;
        if (failure === undefined) throw new NotReadyError(`the default mode '${mode}' is not loaded yet`);
        throw new NotReadyError(
          `the start failed (${failure}); ready once a mode loads: a reload of modes.yaml tries '${mode}' again`,
        );
      }
      case 'serving':
        return { status: 'ready', current_mode: this.registry.currentMode ?? null };
    }
  }
}
