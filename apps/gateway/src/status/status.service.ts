import { Injectable } from '@nestjs/common';

import { toHttpError } from '../errors/http-error.table.js';
import { ModelHostUnavailableError } from '../errors/domain.errors.js';
import { KeepAliveService } from '../memory-policy/keep-alive.service.js';
import { MemoryRefresher } from '../memory/memory-refresher.service.js';
import { ModesService } from '../modes/modes.service.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { ModelHostConnection } from '../model-host/model-host.connection.js';
import { modeOfKey } from '../modes/mode-key.js';
import { RegistryService } from '../registry/registry.service.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import type { ModePolicyDto, ModelsStatusDto, VramDto } from './dto/status.dto.js';

/** Bytes per reported "GB": GiB, what the spec's 24.0 for a 24 GiB card means. */
export const BYTES_PER_GB = 2 ** 30;

/**
 * The figures of GET /api/models/status and GET /api/vram, from the registry's state: a status request costs
 * no call to the model host (MemoryRefresher keeps the figures fresh, `as_of` says from when).
 */
@Injectable()
export class StatusService {
  /** The last view rendered, for the figures it came from: pollers read the same figures many times over. */
  private rendered: { stats: MemoryStats; at: number; view: VramDto } | undefined;

  constructor(
    private readonly modes: ModesService,
    private readonly pool: WorkerPool,
    private readonly registry: RegistryService,
    private readonly memory: MemoryRefresher,
    private readonly connection: ModelHostConnection,
    private readonly keepAlive: KeepAliveService,
  ) {}

  /** 503 while the model host is lost, or when its figures cannot be read at all. */
  async vram(): Promise<VramDto> {
    const down = this.connection.unavailableReason;
    if (down !== undefined) throw new ModelHostUnavailableError(down);
    // No figures yet (the model host has just (re)started): read them once; later requests answer from state.
    if (this.registry.lastMemory === undefined) await this.memory.refresh();
    const stats = this.registry.lastMemory;
    const at = this.registry.lastMemoryAt;
    if (stats === undefined || at === undefined) {
      throw new ModelHostUnavailableError(this.memory.lastFailure ?? 'its memory figures are not known yet');
    }
    if (this.rendered?.stats !== stats || this.rendered.at !== at) {
      this.rendered = { stats, at, view: { ...toVramView(stats), as_of: new Date(at).toISOString() } };
    }
    return this.rendered.view;
  }

  async status(): Promise<ModelsStatusDto> {
    const vram = await this.vram();
    const failure = this.modes.lastReloadError;
    const switchFailure = this.pool.lastSwitchError;
    return {
      current_mode: this.registry.currentMode ?? null,
      queue_size: this.pool.queueSize,
      vram,
      last_reload_error: failure
        ? { at: failure.at, trigger: failure.trigger, source: failure.source, problems: [...failure.problems] }
        : null,
      reload_warnings: this.modes.reloadWarnings.map(({ path, message }) => ({ path, message })),
      last_switch_error: switchFailure
        ? {
            at: switchFailure.at.toISOString(),
            mode: switchFailure.mode,
            error: toHttpError(switchFailure.error).body.error,
            message: switchFailure.error.message,
          }
        : null,
      memory_policy: this.memoryPolicy(),
    };
  }

  private memoryPolicy(): ModePolicyDto[] {
    const tiers = new Map(this.registry.residentModels().map((entry) => [entry.mode, entry.tier]));
    return [...this.modes.config.modes.values()].map((mode) => {
      const resident = tiers.get(mode.name) ?? null;
      const expires = resident === 'device' ? this.keepAlive.expiresAt(mode.name) : undefined;
      return {
        mode: mode.name,
        keep_alive: mode.keepAlive,
        keep_alive_ms: mode.keepAliveMs ?? null,
        pinned: mode.pinned,
        resident,
        expires_at: expires?.toISOString() ?? null,
      };
    });
  }
}

/** The spec's vram object; models parked in the model host's RAM tier are not on the device and not listed. */
export function toVramView(stats: MemoryStats): Omit<VramDto, 'as_of'> {
  const models = stats.models
    .filter((model) => !model.inRamTier)
    .map((model) => ({
      name: modeOfKey(model.key),
      model_path: model.modelPath,
      vram_gb: gigabytes(model.bytes),
      loras: model.loras.map((lora) => ({ path: lora.path, strength: lora.strength, adapter_name: lora.adapterName })),
      key: model.key,
      architecture: model.architecture,
      stale: model.stale,
      bytes: model.bytes,
    }));
  return {
    device: stats.deviceName || stats.device,
    total_gb: gigabytes(stats.totalBytes),
    used_gb: gigabytes(stats.usedBytes),
    available_gb: gigabytes(stats.availableBytes),
    usage_percent: stats.totalBytes > 0 ? round((stats.usedBytes / stats.totalBytes) * 100, 1) : 0,
    models_loaded: models.length,
    models,
    device_type: stats.device,
  };
}

function gigabytes(bytes: number): number {
  return round(bytes / BYTES_PER_GB, 2);
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}
