import { UnknownTaskError } from '../errors/domain.errors.js';
import { CustomJob, GenerationJob, ModeSwitchJob, type Job } from './job.types.js';
import type { CustomPayload, JobPayload } from './queue-backend.js';

/**
 * The job as the backend carries it: plain data. Generations, switches and custom jobs naming a registered handler
 * are that already; a custom job that carries a function stays in this process (`handler: null`, no arguments).
 */
export function payloadOf(job: Job): JobPayload {
  if (job.kind !== 'custom') return job;
  // A CustomJob naming its handler has the payload's fields and no others: it is its own payload, as a generation is.
  if (typeof job.handler === 'string') return job as CustomPayload;
  return { kind: 'custom', handler: null, args: [], host: job.host };
}

/** A job made again from its payload (one another gateway queued). */
export function jobOf(payload: JobPayload): Job {
  switch (payload.kind) {
    case 'generation':
      return new GenerationJob(payload.mode, payload.params);
    case 'mode-switch':
      return new ModeSwitchJob(payload.mode);
    case 'custom':
      if (payload.handler !== null) {
        return new CustomJob({ handler: payload.handler, args: payload.args, host: payload.host });
      }
      return new CustomJob({
        handler: () => {
          throw new UnknownTaskError('this job carries a function: only the gateway that queued it can run it');
        },
        args: [],
        host: payload.host,
      });
  }
}
