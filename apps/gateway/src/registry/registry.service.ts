import { Injectable } from '@nestjs/common';

import type { ResolvedMode } from '../modes/mode.types.js';
import type { LoadResult, MemoryStats } from '../sidecar/sidecar.types.js';

export interface ResidentEntry {
  readonly mode: string;
  readonly load: LoadResult;
}

/** The ModelRegistry: which mode is active, what the sidecar holds (from its load replies), the last memory figures. */
@Injectable()
export class RegistryService {
  private active: { readonly mode: string; readonly key: string } | undefined;
  private readonly resident = new Map<string, ResidentEntry>();
  private memory: MemoryStats | undefined;
  private startedUp = false;

  get currentMode(): string | undefined {
    return this.active?.mode;
  }

  get activeKey(): string | undefined {
    return this.active?.key;
  }

  /** True once the default mode was loaded at start, until the sidecar goes away. */
  get ready(): boolean {
    return this.startedUp;
  }

  get lastMemory(): MemoryStats | undefined {
    return this.memory;
  }

  residentModels(): ResidentEntry[] {
    return [...this.resident.values()];
  }

  /** A load made `mode` active; whatever the sidecar evicted for it is gone. */
  recordLoad(mode: ResolvedMode, load: LoadResult): void {
    for (const key of load.evicted) this.forget(key);
    this.resident.set(mode.key, { mode: mode.name, load });
    this.active = { mode: mode.name, key: mode.key };
  }

  forget(key: string): void {
    this.resident.delete(key);
    if (this.active?.key === key) this.active = undefined;
  }

  recordMemory(stats: MemoryStats): void {
    this.memory = stats;
  }

  markStartedUp(): void {
    this.startedUp = true;
  }

  /** The sidecar process ended: nothing it held survives. */
  clear(): void {
    this.resident.clear();
    this.active = undefined;
    this.memory = undefined;
    this.startedUp = false;
  }
}
