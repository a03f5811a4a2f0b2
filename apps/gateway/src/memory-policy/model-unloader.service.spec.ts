import type { ModesService } from '../modes/modes.service.js';
import type { WorkerPool } from '../queue/worker-pool.service.js';
import type { HostSession } from '../model-host/host-session.js';
import type { HostsService } from '../model-host/hosts.service.js';
import type { ResidentModel } from '../model-host/model-host.types.js';
import { ModelUnloader } from './model-unloader.service.js';

function resident(key: string, baseKey: string, inRamTier = false): ResidentModel {
  return {
    key,
    baseKey,
    inRamTier,
    modelPath: '/models/x.safetensors',
    bytes: 1,
    loras: [],
    tier: inRamTier ? 'ram' : 'device',
    lastUsedUnixMs: 0,
    architecture: 'sd15',
    stale: false,
  };
}

describe('ModelUnloader.baseSharers', () => {
  let host: HostSession;

  function unloaderHolding(models: ResidentModel[]): ModelUnloader {
    host = { id: 'test/cpu', client: { getMemory: () => Promise.resolve({ models }) } } as unknown as HostSession;
    return new ModelUnloader({} as WorkerPool, {} as HostsService, {} as ModesService);
  }

  it('names the other modes on the same base on the device, once each', async () => {
    const unloader = unloaderHolding([
      resident('base-aaaaaaaaaaaa', 'base-aaaaaaaaaaaa'),
      resident('portrait-bbbbbbbbbbbb', 'base-aaaaaaaaaaaa'),
      resident('portrait-cccccccccccc', 'base-aaaaaaaaaaaa'),
      resident('elsewhere-dddddddddddd', 'elsewhere-dddddddddddd'),
    ]);
    expect(await unloader.baseSharers(host, 'base')).toEqual(['portrait']);
    expect(await unloader.baseSharers(host, 'portrait')).toEqual(['base']);
    expect(await unloader.baseSharers(host, 'elsewhere')).toEqual([]);
  });

  it('leaves out a base parked in the RAM tier, and a mode not on the device', async () => {
    const unloader = unloaderHolding([
      resident('a-aaaaaaaaaaaa', 'a-aaaaaaaaaaaa', true),
      resident('b-bbbbbbbbbbbb', 'a-aaaaaaaaaaaa', true),
    ]);
    expect(await unloader.baseSharers(host, 'a')).toEqual([]);
    expect(await unloader.baseSharers(host, 'missing')).toEqual([]);
  });
});
