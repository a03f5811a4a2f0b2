import type { ModesConfig, ResolvedMode } from '../modes/mode.types.js';
import type { ModesService } from '../modes/modes.service.js';
import type { CustomJob, JobHandler } from '../queue/job.types.js';
import type { WorkerPool } from '../queue/worker-pool.service.js';
import type { ResidentEntry } from '../registry/registry.service.js';
import type { HostSession } from '../model-host/host-session.js';
import type { HostsService } from '../model-host/hosts.service.js';
import { PIN_SYNC_HANDLER, PinSyncService } from './pin-sync.service.js';

function configWith(pins: Record<string, boolean>): ModesConfig {
  const modes = new Map(
    Object.entries(pins).map(([name, pinned]) => [name, { name, key: `${name}-0123456789ab`, pinned } as ResolvedMode]),
  );
  return { modes } as unknown as ModesConfig;
}

describe('PinSyncService', () => {
  it("sends a reloaded pin to the model host, in the queue's turn, for the modes on the device only", async () => {
    const handlers = new Map<string, JobHandler>();
    const submitted: CustomJob[] = [];
    const pool = {
      registerHandler: (name: string, handler: JobHandler) => handlers.set(name, handler),
      enqueue: (job: CustomJob) => Promise.resolve(submitted.push(job)),
    } as unknown as WorkerPool;
    let config = configWith({ active: false, parked: false, same: true, idle: true });
    let reload: (config: ModesConfig) => void = () => undefined;
    const modes = {
      get config() {
        return config;
      },
      onReload: (listener: (config: ModesConfig) => void) => (reload = listener),
    } as unknown as ModesService;
    const resident: ResidentEntry[] = [
      { key: 'active-0123456789ab', mode: 'active', bytes: 1, architecture: 'sd15', tier: 'device' },
      { key: 'parked-0123456789ab', mode: 'parked', bytes: 1, architecture: 'sd15', tier: 'ram' },
      { key: 'same-0123456789ab', mode: 'same', bytes: 1, architecture: 'sd15', tier: 'device' },
    ];
    const loads: { name: string; pinned: boolean }[] = [];
    const host = {
      id: 'test/cpu',
      registry: { residentModels: () => resident },
      client: { load: (mode: ResolvedMode) => Promise.resolve(loads.push({ name: mode.name, pinned: mode.pinned })) },
    } as unknown as HostSession;
    const hosts = { accepting: () => [host] } as unknown as HostsService;
    const service = new PinSyncService(pool, modes, hosts);
    service.onModuleInit();
    service.onApplicationBootstrap();

    config = configWith({ active: true, parked: true, same: true, idle: false });
    reload(config);
    expect(submitted.map((job) => [job.handler, job.args, job.host])).toEqual([
      [PIN_SYNC_HANDLER, [['active', 'parked', 'idle']], 'test/cpu'],
    ]);
    const [job] = submitted;
    await handlers.get(PIN_SYNC_HANDLER)?.apply({ host }, [...(job?.args ?? [])]);
    expect(loads).toEqual([{ name: 'active', pinned: true }]);

    reload(config); // nothing changed: nothing to send
    expect(submitted).toHaveLength(1);
  });
});
