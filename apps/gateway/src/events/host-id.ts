import type { AppConfig } from '../config/app-config.js';

/**
 * The Nest token of the one model host's id. Hosts become plural (DESIGN §6): then each host session has its own
 * id and the engine says which host runs a job; until then every event names this one.
 */
export const SINGLE_HOST_ID = Symbol('SINGLE_HOST_ID');

/** `local/<device>` for the model host the gateway runs (`local/auto` when SIDECAR_DEVICE is unset), else its address. */
export function singleHostId(config: Pick<AppConfig, 'modelHostAddr' | 'modelHostDevice'>): string {
  if (config.modelHostAddr !== undefined) return config.modelHostAddr;
  return `local/${config.modelHostDevice ?? 'auto'}`;
}
