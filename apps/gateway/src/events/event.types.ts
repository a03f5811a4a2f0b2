import type { ModelHostState } from '../model-host/model-host.connection.js';
import type { LoadResult, MemoryStats } from '../model-host/model-host.types.js';
import type { ReloadTrigger } from '../modes/modes.service.js';
import type { JobSnapshot } from '../queue/job-record.types.js';
import type { EvictionReason } from '../registry/model.events.js';

/**
 * Every event of the gateway's one bus (DESIGN §6): what jobs, model hosts, their memory and the modes file do.
 * In-process subscribers (metrics, the job log, keep-alive, the SSE streams) get these objects; `GET /api/events`
 * sends each as `event: <type>` with `data:` from `eventData` (event-data.ts). Job events carry the job's frozen
 * snapshot, shared by every subscriber and rendered only when a stream sends it.
 */
export type GatewayEvent = JobBusEvent | ModelBusEvent | MemoryEvent | ConfigEvent | HostStateEvent;

type JobFields = {
  readonly job: JobSnapshot;
  /** The model host that runs the job; null while queued. */
  readonly host: string | null;
};

export type JobBusEvent =
  | (JobFields & { readonly type: 'job.queued' | 'job.started' | 'job.completed' | 'job.failed' | 'job.cancelled' })
  | (JobFields & { readonly type: 'job.switching'; readonly from_mode: string | null; readonly to_mode: string })
  | (JobFields & { readonly type: 'job.progress'; readonly step: number; readonly total_steps: number });

/** Where a key is after the event: on the device, parked in the model host's RAM tier, or gone (null). */
export type ModelTier = 'device' | 'ram' | null;

export type ModelBusEvent =
  | {
      readonly type: 'model.loaded';
      readonly host: string;
      readonly mode: string;
      readonly key: string;
      readonly tier: 'device';
      readonly bytes: number;
      readonly source: LoadResult['source'];
      /** A RAM-tier switch to a pipeline a prefetch built (PREFETCH). */
      readonly prefetched: boolean;
    }
  | {
      readonly type: 'model.evicted';
      readonly host: string;
      readonly mode: string;
      readonly key: string;
      readonly tier: 'ram' | null;
      /** The key's size as last heard of; null when the gateway never knew it. */
      readonly bytes: number | null;
      readonly reason: EvictionReason;
    }
  | {
      readonly type: 'model.load_failed';
      readonly host: string;
      readonly mode: string;
      /** The mode's key in the running modes file; null when the mode is no longer in it. */
      readonly key: string | null;
      readonly tier: null;
      readonly bytes: null;
      readonly reason: string;
    };

/** One model host's memory figures, published when they change. */
export interface MemoryEvent {
  readonly type: 'memory';
  readonly host: string;
  readonly memory: MemoryStats;
}

/** A problem of a refused modes file: its YAML path (null when the problem is the file as a whole) and what is wrong. */
export interface ConfigProblem {
  readonly path: string | null;
  readonly message: string;
}

export type ConfigEvent =
  | {
      readonly type: 'config.reloaded';
      readonly trigger: ReloadTrigger;
      readonly source: string;
      readonly modes: readonly string[];
      readonly default_mode: string;
      readonly added: readonly string[];
      readonly removed: readonly string[];
      /** Modes whose key changed: they load again on their next use. */
      readonly changed: readonly string[];
    }
  | {
      readonly type: 'config.rejected';
      readonly trigger: ReloadTrigger;
      readonly source: string;
      readonly problems: readonly ConfigProblem[];
    };

export interface HostStateEvent {
  readonly type: 'host.state';
  readonly host: string;
  readonly state: ModelHostState;
  readonly reason: string | null;
}

export type GatewayEventType = GatewayEvent['type'];

/** Every type, for validating `?types=` prefixes and for the OpenAPI document. */
export const EVENT_TYPES: readonly GatewayEventType[] = [
  'job.queued',
  'job.started',
  'job.switching',
  'job.progress',
  'job.completed',
  'job.failed',
  'job.cancelled',
  'model.loaded',
  'model.evicted',
  'model.load_failed',
  'memory',
  'config.reloaded',
  'config.rejected',
  'host.state',
];

/** Sent alone, instead of a replay, to a client whose Last-Event-ID is older than the buffer (or not ours). */
export const RESET_EVENT = 'reset';

/** Whether `type` is selected by `prefixes` (none: every type). */
export function matchesTypes(type: string, prefixes: readonly string[] | undefined): boolean {
  if (prefixes === undefined || prefixes.length === 0) return true;
  // A loop, not `some` with a closure: the bus asks this of every subscriber for every event.
  for (const prefix of prefixes) if (type.startsWith(prefix)) return true;
  return false;
}
