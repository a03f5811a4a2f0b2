import type { Caller } from '../auth/api-keys.js';
import { ForbiddenError } from '../errors/domain.errors.js';
import type { JobSnapshot } from '../queue/job-record.types.js';

/**
 * Who may list and cancel a job (README "API keys"): an admin (an ADMIN_API_KEY key, or any caller the admin routes
 * are open to) every job; any other caller only the generations it queued itself. The server's own work and what the
 * admin routes queue (switches, unloads, keep-alive expiries: owner null) is an admin's alone, so a plain key can
 * neither see nor cancel it.
 */
export function mayTouch(job: Pick<JobSnapshot, 'owner'>, caller: Caller): boolean {
  return caller.admin || (job.owner !== null && job.owner === caller.id);
}

/** Throws the 403 a caller gets for a job it may not touch, saying whose it is and what key would do. */
export function requireMayTouch(job: Pick<JobSnapshot, 'id' | 'owner'>, caller: Caller): void {
  if (mayTouch(job, caller)) return;
  throw new ForbiddenError(
    job.owner === null
      ? `job '${job.id}' is the server's or an admin's work: only an admin key (ADMIN_API_KEY) may cancel it`
      : `job '${job.id}' was queued with another key: only that key or an admin key (ADMIN_API_KEY) may cancel it`,
  );
}
