import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { modeOfKey } from '../modes/mode-key.js';
import { ModesService, type ReloadFailure } from '../modes/modes.service.js';
import { ModelHostConnection } from '../model-host/model-host.connection.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import type { ModelEvent } from '../registry/model.events.js';
import { RegistryService } from '../registry/registry.service.js';
import { EventBus } from './event-bus.js';
import type { ConfigProblem } from './event.types.js';
import { SINGLE_HOST_ID } from './host-id.js';

/** `modes.x.loras[1].strength: must be a number`: a YAML path (no spaces), then what is wrong. */
const PROBLEM = /^([^\s:]+): (.*)$/s;

/**
 * Publishes on the bus what producers that do not know it yet report their own way: the registry's ModelEvents
 * (`model.*`), its memory figures (`memory`), the connection's states (`host.state`) and the modes file's reloads
 * (`config.*`). With one model host every event names SINGLE_HOST_ID. When the host sessions publish themselves
 * (docs/ARCHITECTURE.md, "The event bus"), the part of this bridge they replace goes.
 */
@Injectable()
export class EventBridge implements OnModuleInit, OnModuleDestroy {
  private readonly unsubscribe: (() => void)[] = [];
  /** Each key's size as last heard of: an evicted key has left the registry when its event comes. */
  private readonly bytesOf = new Map<string, number>();
  /** The memory figures last published, as JSON: a read that changed nothing is not an event. */
  private lastMemory: string | undefined;
  private restoreRecordMemory: (() => void) | undefined;

  constructor(
    private readonly bus: EventBus,
    private readonly registry: RegistryService,
    private readonly connection: ModelHostConnection,
    private readonly modes: ModesService,
    @Inject(SINGLE_HOST_ID) private readonly host: string,
  ) {}

  onModuleInit(): void {
    this.unsubscribe.push(
      this.registry.events.on((event) => this.onModel(event)),
      this.connection.onState((state, reason) =>
        this.bus.publish({ type: 'host.state', host: this.host, state, reason: reason ?? null }),
      ),
    );
    this.modes.onReload((config, { trigger, diff }) =>
      this.bus.publish({
        type: 'config.reloaded',
        trigger,
        source: config.source,
        modes: [...config.modes.keys()],
        default_mode: config.defaultMode,
        added: diff.added,
        removed: diff.removed,
        changed: diff.changed,
      }),
    );
    this.modes.onReloadRejected((failure) => this.onRejected(failure));
    this.hookMemory();
  }

  onModuleDestroy(): void {
    for (const off of this.unsubscribe.splice(0)) off();
    this.restoreRecordMemory?.();
  }

  private onModel(event: ModelEvent): void {
    switch (event.type) {
      case 'loaded':
        this.bytesOf.set(event.key, event.bytes);
        this.bus.publish({
          type: 'model.loaded',
          host: this.host,
          mode: event.mode,
          key: event.key,
          tier: 'device',
          bytes: event.bytes,
          source: event.source,
        });
        return;
      case 'evicted': {
        // Still in the registry after an eviction only when the model host parked it in its RAM tier.
        const parked = this.registry.residentModels().find((model) => model.key === event.key && model.tier === 'ram');
        this.bus.publish({
          type: 'model.evicted',
          host: this.host,
          mode: modeOfKey(event.key),
          key: event.key,
          tier: parked ? 'ram' : null,
          bytes: parked?.bytes ?? this.bytesOf.get(event.key) ?? null,
          reason: event.reason,
        });
        if (!parked) this.bytesOf.delete(event.key);
        return;
      }
      case 'load-failed':
        this.bus.publish({
          type: 'model.load_failed',
          host: this.host,
          mode: event.mode,
          key: this.modes.config.modes.get(event.mode)?.key ?? null,
          tier: null,
          bytes: null,
          reason: event.error.message,
        });
    }
  }

  private onRejected(failure: ReloadFailure): void {
    this.bus.publish({
      type: 'config.rejected',
      trigger: failure.trigger,
      source: failure.source,
      problems: failure.problems.map(toProblem),
    });
  }

  /**
   * The registry has no hook for its memory figures (the MemoryRefresher writes them with recordMemory): until it
   * publishes `memory` itself, the bridge wraps that one method on the one registry. Replace with a publish in
   * RegistryService.recordMemory (or a per-host session's) and delete this.
   */
  private hookMemory(): void {
    const registry = this.registry;
    const recordMemory = registry.recordMemory.bind(registry);
    registry.recordMemory = (stats: MemoryStats, version?: number): void => {
      recordMemory(stats, version);
      this.onMemory(stats);
    };
    this.restoreRecordMemory = () => (registry.recordMemory = recordMemory);
  }

  private onMemory(stats: MemoryStats): void {
    for (const model of stats.models) this.bytesOf.set(model.key, model.bytes);
    // Not each model's last use: that changes with every generation, and says nothing about memory.
    const figures = JSON.stringify([
      stats.device,
      stats.totalBytes,
      stats.usedBytes,
      stats.availableBytes,
      stats.reserveBytes,
      stats.ramTierBytes,
      stats.ramTierCapacityBytes,
      stats.models.map((model) => [model.key, model.bytes, model.inRamTier]),
    ]);
    if (figures === this.lastMemory) return;
    this.lastMemory = figures;
    this.bus.publish({ type: 'memory', host: this.host, memory: stats });
  }
}

export function toProblem(problem: string): ConfigProblem {
  const match = PROBLEM.exec(problem);
  return match ? { path: match[1], message: match[2] } : { path: null, message: problem };
}
