import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';

import { ModelNotLoadedError } from '../errors/domain.errors.js';
import { modeOfKey } from '../modes/mode-key.js';
import { ModesService } from '../modes/modes.service.js';
import { CustomJob, onHost } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { UnloadReason } from '../registry/registry.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import type { ResidencyTier } from '../model-host/model-host.types.js';

/** What to unload: the keys of these modes, or every key the model host holds. */
export type UnloadTarget =
  { readonly modes: readonly string[] } | { readonly keys: readonly string[] } | { readonly all: true };

export interface UnloadedModel {
  readonly mode: string;
  readonly key: string;
  /** What the model host says the unload gave back (device memory, or system memory for the RAM tier). */
  readonly freed_bytes: number;
  /** Where it was: on the device, or parked in the RAM tier. */
  readonly tier: ResidencyTier;
  /** It went to the RAM tier rather than away (keep-alive expiries, with a RAM tier): still loaded. */
  readonly parked: boolean;
  /** The model host it was on. */
  readonly host: string;
}

export interface UnloadResult {
  readonly unloaded: readonly UnloadedModel[];
}

/** The handler name of the job that unloads: `new CustomJob({ handler: UNLOAD_HANDLER, args: [target, reason] })`. */
export const UNLOAD_HANDLER = 'models.unload';

/**
 * Unloads modes from the model hosts, on each host in its turn (a CustomJob bound to it), so that an unload waits
 * for the job running there and never pulls a pipeline from under a generation. Every unload the gateway orders
 * goes through here and is recorded with that host's RegistryService.recordUnload.
 */
@Injectable()
export class ModelUnloader implements OnModuleInit {
  private readonly logger = new Logger(ModelUnloader.name);

  constructor(
    private readonly pool: WorkerPool,
    private readonly hosts: HostsService,
    private readonly modes: ModesService,
  ) {}

  onModuleInit(): void {
    this.pool.registerHandler(
      UNLOAD_HANDLER,
      onHost((host, target: UnloadTarget, reason: UnloadReason) => this.unloadNow(host, target, reason)),
    );
  }

  /**
   * Queues the unload on every model host that serves, behind the jobs already queued, and resolves once it ran on
   * each.
   * @throws ModeNotFoundError for a mode modes.yaml does not define; QueueFullError, ModelHostUnavailableError,
   *   ShuttingDownError as any job.
   */
  async submit(target: UnloadTarget, reason: UnloadReason): Promise<UnloadResult> {
    if ('modes' in target) for (const mode of target.modes) this.modes.getMode(mode);
    const hosts = this.hosts.accepting();
    // None serves: submitting to the default host says why (503), as any job would.
    return this.submitOn(hosts.length > 0 ? hosts : [this.hosts.default], target, reason);
  }

  /** Queues the unload on each of `hosts`, behind the jobs queued there, and resolves once it ran on each. */
  async submitOn(targets: readonly HostSession[], target: UnloadTarget, reason: UnloadReason): Promise<UnloadResult> {
    const handles = await Promise.all(
      targets.map((host) =>
        this.pool.enqueue(
          new CustomJob<UnloadResult, readonly [UnloadTarget, UnloadReason]>({
            handler: UNLOAD_HANDLER,
            args: [target, reason],
            host: host.id,
          }),
        ),
      ),
    );
    const results = await Promise.all(handles.map((handle) => handle.result()));
    return { unloaded: results.flatMap((result) => result.unloaded) };
  }

  /**
   * The other modes whose keys sit on `host`'s device on the same base pipeline as `mode`'s (LoRA variants of one
   * checkpoint): taking that base off the device takes them with it. Only from a job on that host.
   */
  async baseSharers(host: HostSession, mode: string): Promise<string[]> {
    const onDevice = (await host.client.getMemory()).models.filter((model) => !model.inRamTier);
    const bases = new Set(onDevice.filter((model) => modeOfKey(model.key) === mode).map((model) => model.baseKey));
    const sharers = onDevice
      .filter((model) => bases.has(model.baseKey))
      .map((model) => modeOfKey(model.key))
      .filter((other) => other !== mode);
    return [...new Set(sharers)];
  }

  /** Unloads from `host` at once: only from a job running on that host (this class's handler, or another one). */
  async unloadNow(host: HostSession, target: UnloadTarget, reason: UnloadReason): Promise<UnloadResult> {
    // The model host's own account, not the registry's: a key evicted or parked meanwhile is seen as it is.
    const held = (await host.client.getMemory()).models;
    const wanted =
      'all' in target
        ? held
        : 'keys' in target
          ? held.filter((model) => target.keys.includes(model.key))
          : held.filter((model) => target.modes.includes(modeOfKey(model.key)));
    // An expiry, or a definition that changed, only takes the key off the device: to the RAM tier when there is
    // room (and that is where a parked key stays). An explicit unload frees both.
    const offload = reason === 'keep-alive' || reason === 'stale';
    const unloaded: UnloadedModel[] = [];
    for (const model of wanted) {
      if (offload && model.inRamTier) continue;
      let freed = 0; // stays 0 for a key gone already (dropped from a full RAM tier)
      let parked = false;
      try {
        if (offload) ({ freedBytes: freed, parked } = await host.client.offload(model.key));
        else freed = await host.client.unload(model.key);
      } catch (error) {
        if (!(error instanceof ModelNotLoadedError)) throw error;
      }
      host.registry.recordUnload(model.key, reason);
      unloaded.push({
        mode: modeOfKey(model.key),
        key: model.key,
        freed_bytes: freed,
        tier: model.tier,
        parked,
        host: host.id,
      });
    }
    if (unloaded.length > 0) {
      this.logger.log(
        `unloaded ${unloaded.map((model) => model.key).join(', ')} from ${host.id} (${reason}): ` +
          `${unloaded.reduce((sum, model) => sum + model.freed_bytes, 0)} bytes freed`,
      );
      await host.memory.refresh();
    }
    return { unloaded };
  }
}
