import { Injectable, Logger } from '@nestjs/common';

import { ModesDisabledError } from '../errors/domain.errors.js';
import { ModesService } from '../modes/modes.service.js';
import { ModeSwitchJob } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { SwitchQueuedDto } from './dto/switch-mode.dto.js';

@Injectable()
export class ModeSwitchService {
  private readonly logger = new Logger(ModeSwitchService.name);

  constructor(
    private readonly modes: ModesService,
    private readonly pool: WorkerPool,
  ) {}

  /**
   * Queues a switch behind the jobs already queued and answers at once. N in the message counts every job that
   * finishes before the switch runs: the ones waiting ahead of it and the running one.
   * @throws ModeNotFoundError, ModesDisabledError (legacy setup), QueueFullError, SidecarUnavailableError
   */
  switchMode(name: string): SwitchQueuedDto {
    if (this.modes.isLegacy) throw new ModesDisabledError('Mode switching');
    this.modes.getMode(name);
    const from = this.pool.expectedMode() ?? null;
    const handle = this.pool.submitJob(new ModeSwitchJob(name));
    // Nobody waits for it over HTTP: say in the log when it fails.
    handle.result().catch((error: unknown) => {
      this.logger.warn(`queued switch to '${name}' failed: ${error instanceof Error ? error.message : String(error)}`);
    });
    return {
      status: 'queued',
      from_mode: from,
      to_mode: name,
      message: `Mode switch queued. Will switch after ${handle.ahead} pending jobs.`,
    };
  }
}
