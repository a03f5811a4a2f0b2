import type { ModelHostWorker } from './model-host.worker.js';
import type { ClaimContext } from './queue-backend.js';

/** No mode: what a host with nothing to leave to another is given (one set for all, never changed). */
export const NO_MODES: ReadonlySet<string> = new Set();

/**
 * What the scheduler chooses against for a free host: its active mode, what it holds, and the modes it should leave
 * to a busy host (`avoid`), less those it holds itself (a job of a mode it holds costs it no load).
 */
export function claimContext(worker: ModelHostWorker, now: number, avoid: ReadonlySet<string>): ClaimContext {
  const resident = worker.residentModes();
  const active = worker.activeMode;
  const ownAvoid =
    avoid.size === 0 ? NO_MODES : new Set([...avoid].filter((mode) => !resident.has(mode) && mode !== active));
  return { activeMode: active, now, host: worker.session.id, resident, avoid: ownAvoid };
}

/**
 * Of the free hosts, the one where `mode` costs least to make active: where it is on the device, else in the RAM
 * tier, else the one with the most free device memory (the load evicts least there); the first on a tie.
 */
export function cheapestHostFor(mode: string, free: readonly ModelHostWorker[]): ModelHostWorker {
  const rank = (worker: ModelHostWorker): number => {
    const tier = worker.tierOf(mode);
    return tier === 'device' ? 2 : tier === 'ram' ? 1 : 0;
  };
  let best = free[0];
  if (!best) throw new Error('cheapestHostFor needs a free host');
  for (const worker of free) {
    const better = rank(worker) - rank(best) || worker.availableBytes() - best.availableBytes();
    if (better > 0) best = worker;
  }
  return best;
}
