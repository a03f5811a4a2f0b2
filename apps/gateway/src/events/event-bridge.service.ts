import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { modeOfKey } from '../modes/mode-key.js';
import { ModesService, type ReloadFailure } from '../modes/modes.service.js';
import { HostsService } from '../model-host/hosts.service.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import { ModelEvents, type ModelEvent } from '../registry/model.events.js';
import { EventBus } from './event-bus.js';
import type { ConfigProblem } from './event.types.js';

/** `modes.x.loras[1].strength: must be a number`: a YAML path (no spaces), then what is wrong. */
const PROBLEM = /^([^\s:]+): (.*)$/s;

/**
 * Publishes on the bus, in its public shapes, what the hosts and the modes file report in their own domain terms:
 * each host registry's ModelEvents (`model.*`, and `memory` once a host's figures changed), each host connection's
 * states (`host.state`) and the modes file's reloads (`config.*`). Every host event names its host.
 */
@Injectable()
export class EventBridge implements OnModuleInit, OnModuleDestroy {
  private readonly unsubscribe: (() => void)[] = [];
  /** Each host's keys' sizes as last heard of (`<host> <key>`): an evicted key has left the registry by its event. */
  private readonly bytesOf = new Map<string, number>();
  /** Each host's memory figures last published, as JSON: a read that changed nothing is not an event. */
  private readonly lastMemory = new Map<string, string>();

  constructor(
    private readonly bus: EventBus,
    private readonly hosts: HostsService,
    private readonly models: ModelEvents,
    private readonly modes: ModesService,
  ) {}

  onModuleInit(): void {
    this.unsubscribe.push(this.models.on((event) => this.onModel(event)));
    for (const session of this.hosts.sessions) {
      this.unsubscribe.push(
        session.connection.onState((state, reason) =>
          this.bus.publish({ type: 'host.state', host: session.id, state, reason: reason ?? null }),
        ),
      );
    }
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
  }

  onModuleDestroy(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private onModel(event: ModelEvent): void {
    const { host } = event;
    // The figures after a load or an eviction follow its event even when a read taken while the model host was
    // changing already showed them (a poll that overtook an unload's reply): a client reads "the memory after it".
    if (event.type === 'loaded' || event.type === 'evicted') this.lastMemory.delete(host);
    switch (event.type) {
      case 'loaded':
        this.bytesOf.set(`${host} ${event.key}`, event.bytes);
        this.bus.publish({
          type: 'model.loaded',
          host,
          mode: event.mode,
          key: event.key,
          tier: 'device',
          bytes: event.bytes,
          source: event.source,
          prefetched: event.prefetched,
        });
        return;
      case 'evicted': {
        // Still in the registry after an eviction only when the model host parked it in its RAM tier.
        const parked = this.hosts
          .get(host)
          ?.registry.residentModels()
          .find((model) => model.key === event.key && model.tier === 'ram');
        this.bus.publish({
          type: 'model.evicted',
          host,
          mode: modeOfKey(event.key),
          key: event.key,
          tier: parked ? 'ram' : null,
          bytes: parked?.bytes ?? this.bytesOf.get(`${host} ${event.key}`) ?? null,
          reason: event.reason,
        });
        if (!parked) this.bytesOf.delete(`${host} ${event.key}`);
        return;
      }
      case 'memory': {
        const stats = this.hosts.get(host)?.registry.lastMemory;
        if (stats) this.onMemory(host, stats);
        return;
      }
      case 'load-failed':
        this.bus.publish({
          type: 'model.load_failed',
          host,
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

  private onMemory(host: string, stats: MemoryStats): void {
    for (const model of stats.models) this.bytesOf.set(`${host} ${model.key}`, model.bytes);
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
    if (figures === this.lastMemory.get(host)) return;
    this.lastMemory.set(host, figures);
    this.bus.publish({ type: 'memory', host, memory: stats });
  }
}

export function toProblem(problem: string): ConfigProblem {
  const match = PROBLEM.exec(problem);
  return match ? { path: match[1], message: match[2] } : { path: null, message: problem };
}
