import type { ResolvedMode } from '../modes/mode.types.js';
import type { LoadResult, MemoryStats, ResidentModel } from '../model-host/model-host.types.js';
import type { ModelEvent } from './model.events.js';
import { RegistryService } from './registry.service.js';

const mode = (name: string): ResolvedMode => ({ name, key: `${name}-k` }) as ResolvedMode;

const load = (key: string, extra: Partial<LoadResult> = {}): LoadResult => ({
  key,
  architecture: 'sd15',
  bytes: 100,
  estimatedBytes: 100,
  loadSeconds: 0.5,
  source: 'disk',
  evicted: [],
  evictedToRam: [],
  evictedOnOom: [],
  device: 'cpu',
  prefetched: false,
  ...extra,
});

describe('RegistryService: model events', () => {
  let registry: RegistryService;
  let events: ModelEvent[];

  beforeEach(() => {
    registry = new RegistryService();
    events = [];
    registry.events.on((event) => events.push(event));
  });

  it('tells each eviction of a load with its reason, then the load with its source', () => {
    for (const name of ['a', 'b', 'c']) registry.recordLoad(mode(name), load(`${name}-k`));
    events.length = 0;
    registry.recordLoad(
      mode('d'),
      load('d-k', { source: 'ram', evicted: ['a-k', 'b-k', 'c-k'], evictedToRam: ['b-k'], evictedOnOom: ['c-k'] }),
    );
    expect(events).toEqual([
      { host: 'local', type: 'evicted', key: 'a-k', reason: 'make-room' },
      { host: 'local', type: 'evicted', key: 'b-k', reason: 'make-room' },
      { host: 'local', type: 'evicted', key: 'c-k', reason: 'oom-retry' },
      {
        host: 'local',
        type: 'loaded',
        key: 'd-k',
        mode: 'd',
        source: 'ram',
        bytes: 100,
        architecture: 'sd15',
        prefetched: false,
      },
    ]);
    expect(registry.residentModels().map((entry) => `${entry.key}:${entry.tier}`)).toEqual(['b-k:ram', 'd-k:device']);
  });

  it('forgets a key the gateway unloaded and tells why', () => {
    registry.recordLoad(mode('a'), load('a-k'));
    registry.recordUnload('a-k', 'keep-alive');
    expect(registry.residentModels()).toEqual([]);
    expect(registry.currentMode).toBeUndefined();
    expect(events.at(-1)).toEqual({ host: 'local', type: 'evicted', key: 'a-k', reason: 'keep-alive' });
  });

  it('tells a failed load and changes nothing it holds', () => {
    registry.recordLoad(mode('a'), load('a-k'));
    const error = new Error('bad LoRA');
    registry.recordLoadFailure(mode('b'), error);
    expect(events.at(-1)).toEqual({ host: 'local', type: 'load-failed', mode: 'b', error });
    expect(registry.currentMode).toBe('a');
  });

  describe('a memory read', () => {
    const held = (key: string, tier: ResidentModel['tier']): ResidentModel =>
      ({ key, tier, bytes: 100, architecture: 'sd15', inRamTier: tier === 'ram', baseKey: key }) as ResidentModel;
    const memory = (...models: ResidentModel[]): MemoryStats => ({ models }) as unknown as MemoryStats;

    it('tells a key the model host dropped from its RAM tier (ram-full), before the memory figures', () => {
      registry.recordMemory(memory(held('a-k', 'device'), held('b-k', 'ram'), held('c-k', 'ram')));
      events.length = 0;
      registry.recordMemory(memory(held('a-k', 'device'), held('c-k', 'ram')));
      expect(events).toEqual([
        { host: 'local', type: 'evicted', key: 'b-k', reason: 'ram-full' },
        { host: 'local', type: 'memory' },
      ]);
      expect(registry.residentModels().map((entry) => entry.key)).toEqual(['a-k', 'c-k']);
    });

    it('tells nothing of a key a load or an unload overtook, nor of one that left the device', () => {
      registry.recordMemory(memory(held('a-k', 'device'), held('b-k', 'ram')));
      const asked = registry.version;
      registry.recordUnload('b-k', 'unload');
      events.length = 0;
      // Asked before the unload: its figures count, its list does not.
      registry.recordMemory(memory(held('a-k', 'device')), asked);
      registry.recordMemory(memory());
      expect(events).toEqual([
        { host: 'local', type: 'memory' },
        { host: 'local', type: 'memory' },
      ]);
    });
  });

  it('survives a listener that throws', () => {
    registry.events.on(() => {
      throw new Error('broken subscriber');
    });
    expect(() => registry.recordLoad(mode('a'), load('a-k'))).not.toThrow();
    expect(registry.currentMode).toBe('a');
  });
});
