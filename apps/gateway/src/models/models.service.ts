import { realpathSync } from 'node:fs';
import { relative } from 'node:path';

import { Injectable } from '@nestjs/common';

import { ModelUnloader } from '../memory-policy/model-unloader.service.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import { HostsService } from '../model-host/hosts.service.js';
import { StatusService } from '../status/status.service.js';
import type { InventoryFile, MemoryStats } from '../model-host/model-host.types.js';
import type { ModelFileDto, ModelInventoryDto, ModelKind, ResidentLocation } from './dto/model-file.dto.js';
import type { UnloadReplyDto } from './dto/unload-models.dto.js';

const KIND_BY_ARCHITECTURE: Readonly<Record<string, ModelKind>> = {
  sd15: 'checkpoint',
  sd2: 'checkpoint',
  'sdxl-base': 'checkpoint',
  'sdxl-refiner': 'checkpoint',
  lora: 'lora',
  upscaler: 'upscaler',
};

/** The model host's inventory of the model roots, joined with the modes that use each file and what is loaded. */
@Injectable()
export class ModelsService {
  constructor(
    private readonly hosts: HostsService,
    private readonly modes: ModesService,
    private readonly unloader: ModelUnloader,
    private readonly status: StatusService,
  ) {}

  /**
   * Unloads `mode`'s keys (undefined: every key) in the device queue's turn. Unloading the active mode leaves no
   * mode active: the next request loads its mode again.
   * @throws ModeNotFoundError, QueueFullError, ModelHostUnavailableError, ShuttingDownError
   */
  async unload(mode: string | undefined): Promise<UnloadReplyDto> {
    const { unloaded } = await this.unloader.submit(mode === undefined ? { all: true } : { modes: [mode] }, 'unload');
    return {
      modes: [...new Set(unloaded.map((model) => model.mode))],
      keys: unloaded.map((model) => model.key),
      freed_bytes: unloaded.reduce((sum, model) => sum + model.freed_bytes, 0),
      unloaded: unloaded.map(({ mode: name, key, freed_bytes, tier }) => ({ mode: name, key, freed_bytes, tier })),
      current_mode: this.status.currentMode() ?? null,
    };
  }

  async inventory(): Promise<ModelInventoryDto> {
    // Every host watches the same roots: the default one's (or the first that serves) inventory is the inventory.
    const source = this.hosts.accepting()[0] ?? this.hosts.default;
    const [inventory, memories] = await Promise.all([
      source.client.listModels(),
      Promise.all(this.hosts.accepting().map((host) => host.client.getMemory())),
    ]);
    const memory = { models: memories.flatMap((stats) => stats.models) };
    const users = modesByPath(this.modes.config.modes.values());
    const locations = locationByKey(memory);
    return {
      roots: [...inventory.roots],
      polling: inventory.polling,
      models: inventory.files.map((file) => toView(file, users.get(file.path) ?? [], locations)),
    };
  }
}

/** A config folder is read as its family's architecture (sd15, ...), but it holds no weights to load. */
function kindOf(file: InventoryFile): ModelKind {
  return file.format === 'diffusers-config' ? 'config' : (KIND_BY_ARCHITECTURE[file.architecture] ?? 'unknown');
}

function toView(
  file: InventoryFile,
  usedBy: readonly string[],
  locations: ReadonlyMap<string, ResidentLocation>,
): ModelFileDto {
  const where = file.residentKeys.map((key) => locations.get(key));
  // A file used on the device and parked in RAM at once is where generation would find it: on the device.
  const location = where.includes('device') ? 'device' : where.includes('ram') ? 'ram' : null;
  return {
    path: relative(file.root, file.path),
    root: file.root,
    kind: kindOf(file),
    architecture: file.architecture,
    format: file.format,
    bytes: file.sizeBytes,
    modified_at: new Date(file.mtimeUnixMs).toISOString(),
    ...(file.reason && { reason: file.reason }),
    used_by: [...usedBy].sort(),
    resident: file.residentKeys.length > 0,
    location,
    stale: file.stale,
  };
}

/**
 * Every file a mode loads, under its real path too: the model host lists files with its roots' symlinks
 * resolved, while modes keep the paths as written.
 */
function modesByPath(modes: Iterable<ResolvedMode>): Map<string, string[]> {
  const users = new Map<string, Set<string>>();
  for (const mode of modes) {
    const paths = [
      mode.modelPath,
      mode.configDir,
      mode.vaePath,
      mode.superres?.modelPath,
      ...mode.loras.map((lora) => lora.absolutePath),
    ];
    for (const path of paths) {
      if (path === undefined) continue;
      for (const variant of new Set([path, realPath(path)])) {
        users.set(variant, (users.get(variant) ?? new Set()).add(mode.name));
      }
    }
  }
  return new Map([...users].map(([path, names]) => [path, [...names]]));
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    // Not there (yet): the model host cannot list it either.
    return path;
  }
}

/** Where each key is held; on a device anywhere wins over a RAM tier somewhere (several hosts). */
function locationByKey(memory: Pick<MemoryStats, 'models'>): Map<string, ResidentLocation> {
  const locations = new Map<string, ResidentLocation>();
  for (const model of memory.models) {
    if (locations.get(model.key) !== 'device') locations.set(model.key, model.inRamTier ? 'ram' : 'device');
  }
  return locations;
}
