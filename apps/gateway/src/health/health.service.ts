import { Injectable } from '@nestjs/common';

import { NotReadyError } from '../errors/domain.errors.js';
import { withoutAbsolutePaths } from '../logging/redact.js';
import { ModesService } from '../modes/modes.service.js';
import { HostsService } from '../model-host/hosts.service.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { StatusService } from '../status/status.service.js';

export interface Readiness {
  status: 'ready';
  current_mode: string | null;
}

@Injectable()
export class HealthService {
  constructor(
    private readonly modes: ModesService,
    private readonly hosts: HostsService,
    private readonly status: StatusService,
    private readonly pool: WorkerPool,
  ) {}

  /**
   * From the model hosts' connection states, asking them nothing: ready while one serves (the default mode was
   * loaded at its start, and its health check, watched by its connection, says it serves) and the queue can be
   * reached (QUEUE_BACKEND=redis); not ready from the moment a shutdown begins, so that a load balancer stops
   * sending work before the gateway stops taking it.
   */
  readiness(): Readiness {
    const sessions = this.hosts.sessions;
    const states = sessions.map((session) => session.connection.state);
    const state = states.includes('stopping')
      ? 'stopping'
      : states.includes('serving')
        ? 'serving'
        : states.includes('starting')
          ? 'starting'
          : 'lost';
    const connection = (sessions.find((session) => session.connection.state === 'starting') ?? this.hosts.default)
      .connection;
    switch (state) {
      case 'stopping':
        throw new NotReadyError('the server is shutting down');
      case 'lost':
        throw new NotReadyError(sessions.length > 1 ? 'no model host is serving' : 'the model host is not serving');
      case 'starting': {
        const failure = connection.startupFailure;
        const mode = this.modes.config.defaultMode;
        if (failure === undefined) throw new NotReadyError(`the default mode '${mode}' is not loaded yet`);
        // /ready is public: it says what failed, not where the files are (the log and status have the full text).
        throw new NotReadyError(
          `the start failed (${withoutAbsolutePaths(failure)}); ready once a mode loads: a reload of modes.yaml tries '${mode}' again`,
        );
      }
      case 'serving': {
        // A shared queue that cannot be reached takes no work: a load balancer should send it elsewhere.
        const queueDown = this.pool.backend.unavailableReason;
        if (queueDown !== undefined) throw new NotReadyError(`the shared queue is unreachable: ${queueDown}`);
        return { status: 'ready', current_mode: this.status.currentMode() ?? null };
      }
    }
  }
}
