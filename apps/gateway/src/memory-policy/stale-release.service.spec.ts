import type { HostSession } from '../model-host/host-session.js';
import type { HostsService } from '../model-host/hosts.service.js';
import type { ModesConfig, ResolvedMode } from '../modes/mode.types.js';
import type { ModesService, ReloadDetails } from '../modes/modes.service.js';
import type { ResidentEntry } from '../registry/registry.service.js';
import type { ModelUnloader, UnloadTarget } from './model-unloader.service.js';
import { StaleReleaseService } from './stale-release.service.js';

function config(keys: Record<string, string>): ModesConfig {
  return {
    modes: new Map(Object.entries(keys).map(([name, key]) => [name, { name, key } as ResolvedMode])),
  } as unknown as ModesConfig;
}

function host(id: string, resident: ResidentEntry[]): HostSession {
  return { id, registry: { residentModels: () => resident } } as unknown as HostSession;
}

const entry = (key: string, tier: 'device' | 'ram' = 'device'): ResidentEntry => ({
  key,
  mode: key.split('-')[0] ?? key,
  bytes: 1,
  architecture: 'sd15',
  tier,
});

describe('StaleReleaseService', () => {
  it("releases a changed or removed mode's old key on each host that has it on its device, and nothing else", () => {
    let current = config({ a: 'a-000000000001', b: 'b-000000000001', c: 'c-000000000001' });
    let reload: (next: ModesConfig, details: ReloadDetails) => void = () => undefined;
    const modes = {
      get config() {
        return current;
      },
      onReload: (listener: typeof reload) => (reload = listener),
    } as unknown as ModesService;
    const first = host('gw/cuda:0', [entry('a-000000000001'), entry('b-000000000001')]);
    const second = host('gw/cuda:1', [entry('a-000000000001', 'ram'), entry('c-000000000001')]);
    const hosts = { accepting: () => [first, second] } as unknown as HostsService;
    const released: [string[], UnloadTarget, string][] = [];
    const unloader = {
      submitOn: (targets: HostSession[], target: UnloadTarget, reason: string) => {
        released.push([targets.map((target) => target.id), target, reason]);
        return Promise.resolve({ unloaded: [] });
      },
    } as unknown as ModelUnloader;
    const service = new StaleReleaseService(modes, hosts, unloader);
    service.onModuleInit();
    service.onApplicationBootstrap();

    // a edited (new key), b unchanged, c removed.
    current = config({ a: 'a-000000000002', b: 'b-000000000001' });
    const diff = { added: [], removed: ['c'], changed: ['a'], defaultMode: undefined };
    reload(current, { trigger: 'api', diff } as unknown as ReloadDetails);
    expect(released).toEqual([
      [['gw/cuda:0'], { keys: ['a-000000000001'] }, 'stale'],
      [['gw/cuda:1'], { keys: ['c-000000000001'] }, 'stale'],
    ]);

    // A reload that changes nothing releases nothing.
    released.length = 0;
    reload(current, { trigger: 'api', diff: { added: [], removed: [], changed: [] } } as unknown as ReloadDetails);
    expect(released).toEqual([]);
  });
});
