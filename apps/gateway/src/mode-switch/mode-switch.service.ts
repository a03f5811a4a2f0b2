import { Injectable, Logger } from '@nestjs/common';

import { ModesDisabledError } from '../errors/domain.errors.js';
import { ModesService } from '../modes/modes.service.js';
import { ModeSwitchJob } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { SwitchQueuedDto } from './dto/switch-mode.dto.js';
import { ModelFilesProbe } from '../modes/model-files.probe.js';

@Injectable()
export class ModeSwitchService {
  private readonly logger = new Logger(ModeSwitchService.name);

  constructor(
    private readonly modes: ModesService,
    private readonly pool: WorkerPool,
    private readonly files: ModelFilesProbe,
  ) {}

  /**
   * Queues a switch behind the jobs already queued and answers at once. N in the message counts every job that
   * finishes before the switch runs: the ones waiting ahead of it and the running one. A switch that fails later
   * (its load fails in its turn) shows as `last_switch_error` in GET /api/models/status.
   * @throws ModeNotFoundError, ModesDisabledError (legacy setup), ModelFileMissingError (a file of the mode is not
   *   on disk now), QueueFullError, ModelHostUnavailableError, ShuttingDownError
   */
  async switchMode(name: string): Promise<SwitchQueuedDto> {
    if (this.modes.isLegacy) throw new ModesDisabledError('Mode switching');
    this.files.requireFiles(this.modes.getMode(name));
    const from = (await this.pool.expectedMode()) ?? null;
    const handle = await this.pool.enqueue(new ModeSwitchJob(name));
    // Nobody waits for it over HTTP: the log and GET /api/models/status say when it fails.
    handle.result().catch((error: unknown) => {
      this.logger.warn(`queued switch to '${name}' failed: ${error instanceof Error ? error.message : String(error)}`);
    });
    return {
      status: 'queued',
      from_mode: from,
      to_mode: name,
      message: `Mode switch queued. Will switch after ${handle.ahead} pending jobs.`,
      id: handle.id,
    };
  }
}
