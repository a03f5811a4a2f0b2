import { modeOfKey } from '../modes/mode-key.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import { toJobRecord } from '../queue/job-record.types.js';
import type { GatewayEvent } from './event.types.js';

/**
 * The `data:` of an event on GET /api/events: plain JSON, snake_case like the rest of the API. Job events carry the
 * job record as GET /api/jobs/:id shows it (its `position` null: it is read, not pushed) with `host`; `job.progress`
 * only its id, host and step; `job.switching` the record and the switch.
 */
export function eventData(event: GatewayEvent): unknown {
  switch (event.type) {
    case 'job.progress':
      return { id: event.job.id, host: event.host, step: event.step, total_steps: event.total_steps };
    case 'job.switching':
      return { ...toJobRecord(event.job), host: event.host, from_mode: event.from_mode, to_mode: event.to_mode };
    case 'job.queued':
    case 'job.started':
    case 'job.completed':
    case 'job.failed':
    case 'job.cancelled':
      return { ...toJobRecord(event.job), host: event.host };
    case 'memory':
      return memoryData(event.host, event.memory);
    default:
      // The rest are flat and already snake_case: everything but the type, which the `event:` line says.
      return Object.fromEntries(Object.entries(event).filter(([field]) => field !== 'type'));
  }
}

function memoryData(host: string, stats: MemoryStats): unknown {
  return {
    host,
    device: stats.device,
    device_name: stats.deviceName,
    total_bytes: stats.totalBytes,
    used_bytes: stats.usedBytes,
    available_bytes: stats.availableBytes,
    reserve_bytes: stats.reserveBytes,
    ram_tier_bytes: stats.ramTierBytes,
    ram_tier_capacity_bytes: stats.ramTierCapacityBytes,
    models: stats.models.map((model) => ({
      key: model.key,
      mode: modeOfKey(model.key),
      bytes: model.bytes,
      tier: model.inRamTier ? 'ram' : 'device',
    })),
  };
}
