import { Logger } from '@nestjs/common';

import { modeOfKey } from '../modes/mode-key.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import type { LoadResult, MemoryStats, ResidencyTier, ResidentModel } from '../model-host/model-host.types.js';
import { ModelEvents, type EvictionReason } from './model.events.js';

/** Why the gateway had the model host unload a key (the other eviction reasons: make-room, oom-retry, ram-full). */
export type UnloadReason = 'unload' | 'keep-alive' | 'stale';

/** One pipeline key the model host holds, as the registry last heard of it. */
export interface ResidentEntry {
  readonly key: string;
  /** The mode the key was made for (a key is `<mode>-<hash of its definition>`). */
  readonly mode: string;
  readonly bytes: number;
  readonly architecture: string;
  /** `device`: on the accelerator (or in memory, on CPU hosts); `ram`: parked in the model host's RAM tier. */
  readonly tier: ResidencyTier;
}

/**
 * One model host's registry (one per host, in its HostSession): which mode is active on it, which keys it holds and
 * where, and the last memory figures. Fed by load replies (what a load brought
 * in and evicted) and by GetMemory (the model host's own account, which wins),
 * which MemoryRefresher reads after loads and jobs and while one runs; status
 * answers from here. Cleared when the model host goes away and re-synced from
 * GetMemory when it is back. What it records of loads, evictions and failed loads it also tells ModelEvents.
 */
export class RegistryService {
  private readonly logger = new Logger(RegistryService.name);
  private active: { readonly mode: string; readonly key: string } | undefined;
  private readonly resident = new Map<string, ResidentEntry>();
  /** residentModels() until `resident` changes: the engine asks for it on every claim. */
  private residentList: readonly ResidentEntry[] | undefined;
  private memory: MemoryStats | undefined;
  private memoryAt: number | undefined;
  private startedUp = false;
  private loads = 0;

  /** `host`: the model host's id, on every event. */
  constructor(
    readonly host: string = 'local',
    readonly events: ModelEvents = new ModelEvents(),
  ) {}

  get currentMode(): string | undefined {
    return this.active?.mode;
  }

  get activeKey(): string | undefined {
    return this.active?.key;
  }

  /** True once a mode was loaded after the model host (re)started, until the model host goes away. */
  get ready(): boolean {
    return this.startedUp;
  }

  get lastMemory(): MemoryStats | undefined {
    return this.memory;
  }

  /** When lastMemory was read (ms since the epoch); undefined while there are no figures. */
  get lastMemoryAt(): number | undefined {
    return this.memoryAt;
  }

  /** Changes with every load and unload: take it before asking GetMemory, hand it to recordMemory. */
  get version(): number {
    return this.loads;
  }

  residentModels(): readonly ResidentEntry[] {
    return (this.residentList ??= [...this.resident.values()]);
  }

  /** A load made `mode` active; whatever the model host evicted for it left the device (or went to its RAM tier). */
  recordLoad(mode: ResolvedMode, load: LoadResult): void {
    for (const key of load.evicted) {
      const entry = this.resident.get(key);
      if (entry && load.evictedToRam.includes(key)) {
        this.resident.set(key, { ...entry, tier: 'ram' });
        this.residentList = undefined;
      } else this.forget(key);
      const reason: EvictionReason = load.evictedOnOom.includes(key) ? 'oom-retry' : 'make-room';
      this.events.emit({ host: this.host, type: 'evicted', key, reason });
    }
    this.residentList = undefined;
    this.resident.set(mode.key, {
      key: mode.key,
      mode: mode.name,
      bytes: load.bytes,
      architecture: load.architecture,
      tier: 'device',
    });
    this.active = { mode: mode.name, key: mode.key };
    this.loads += 1;
    this.events.emit({
      host: this.host,
      type: 'loaded',
      key: mode.key,
      mode: mode.name,
      source: load.source,
      bytes: load.bytes,
      architecture: load.architecture,
      prefetched: load.prefetched,
    });
  }

  /** The model host could not make `mode` resident. */
  recordLoadFailure(mode: ResolvedMode, error: Error): void {
    this.events.emit({ host: this.host, type: 'load-failed', mode: mode.name, error });
  }

  /**
   * The gateway itself had the model host unload `key` (POST /api/models/unload, or a keep-alive that expired):
   * forgotten like `forget`. The one place such unloads are recorded.
   */
  recordUnload(key: string, reason: UnloadReason): void {
    this.logger.log(`model host unloaded ${key} (${reason})`);
    this.forget(key);
    // A GetMemory asked before the unload must not bring the key back.
    this.loads += 1;
    this.events.emit({ host: this.host, type: 'evicted', key, reason });
  }

  forget(key: string): void {
    this.resident.delete(key);
    this.residentList = undefined;
    if (this.active?.key === key) this.active = undefined;
  }

  /**
   * The model host's own account of what it holds replaces ours; the active mode stays active if its key is still
   * held. `version` is the registry's version when GetMemory was asked: a reply that a load overtook only updates
   * the figures. A key parked in the RAM tier that the account no longer holds was dropped by the model host itself
   * (nothing here unloaded it since, or the version would differ): evicted, `ram-full`.
   */
  recordMemory(stats: MemoryStats, version: number = this.loads): void {
    this.memory = stats;
    this.memoryAt = Date.now();
    const dropped: string[] = [];
    if (version === this.loads) {
      const held = new Set(stats.models.map((model) => model.key));
      for (const entry of this.resident.values())
        if (entry.tier === 'ram' && !held.has(entry.key)) dropped.push(entry.key);
      this.resident.clear();
      this.residentList = undefined;
      for (const model of stats.models) this.resident.set(model.key, toEntry(model));
      if (this.active && !this.resident.has(this.active.key)) this.active = undefined;
    }
    for (const key of dropped) this.events.emit({ host: this.host, type: 'evicted', key, reason: 'ram-full' });
    this.events.emit({ host: this.host, type: 'memory' });
  }

  markStartedUp(): void {
    this.startedUp = true;
  }

  /** The model host process ended (or cannot be reached): nothing it held is known to survive. */
  clear(): void {
    this.resident.clear();
    this.residentList = undefined;
    this.active = undefined;
    this.memory = undefined;
    this.memoryAt = undefined;
    this.startedUp = false;
  }
}

function toEntry(model: ResidentModel): ResidentEntry {
  return {
    key: model.key,
    mode: modeOfKey(model.key),
    bytes: model.bytes,
    architecture: model.architecture,
    tier: model.tier,
  };
}
