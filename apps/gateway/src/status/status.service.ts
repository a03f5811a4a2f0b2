import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

import { toHttpError } from '../errors/http-error.table.js';
import { ModelHostUnavailableError } from '../errors/domain.errors.js';
import { KeepAliveService } from '../memory-policy/keep-alive.service.js';
import { ModesService } from '../modes/modes.service.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { HostSession } from '../model-host/host-session.js';
import { HostsService } from '../model-host/hosts.service.js';
import { modeOfKey } from '../modes/mode-key.js';
import type { ModesConfig } from '../modes/mode.types.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import type {
  HostVramDto,
  ModePolicyDto,
  ModelsStatusDto,
  StatusHostDto,
  VramDto,
  VramHostDto,
  VramReplyDto,
} from './dto/status.dto.js';

/** Bytes per reported "GB": GiB, what the spec's 24.0 for a 24 GiB card means. */
export const BYTES_PER_GB = 2 ** 30;

/** With a shared queue, how often a gateway tells the others its hosts. */
const HOSTS_SHARE_MS = 2_000;

/**
 * The figures of GET /api/models/status and GET /api/vram, from each host's registry: a status request costs no
 * call to a model host (each host's MemoryRefresher keeps its figures fresh, `as_of` says from when). The spec's
 * keys describe every host together (totals summed, every model listed); `hosts` has each one's own.
 */
@Injectable()
export class StatusService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(StatusService.name);
  /** With a shared queue: how often this gateway tells the others its hosts (they keep it three times as long). */
  private shareTimer: NodeJS.Timeout | undefined;
  /** Each host's last view, for the figures it came from: pollers read the same figures many times over. */
  private readonly rendered = new Map<
    string,
    { stats: MemoryStats; at: number; config: ModesConfig; view: HostVramDto }
  >();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly modes: ModesService,
    private readonly pool: WorkerPool,
    private readonly hosts: HostsService,
    private readonly keepAlive: KeepAliveService,
  ) {}

  /**
   * With a shared queue (QUEUE_BACKEND=redis) every gateway lists every gateway's hosts: each tells the others its
   * own every HOSTS_SHARE_MS, and they drop a gateway that stopped telling after three times that.
   */
  onApplicationBootstrap(): void {
    const { backend } = this.pool;
    if (!backend.shared || !backend.shareHosts) return;
    this.shareTimer = setInterval(() => void this.shareHosts(), HOSTS_SHARE_MS);
    this.shareTimer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.shareTimer);
  }

  private async shareHosts(): Promise<void> {
    try {
      const own = await this.ownStatusHosts(this.hosts.sessions.map((session) => this.hostVram(session)));
      await this.pool.backend.shareHosts?.(this.config.gatewayId, own, 3 * HOSTS_SHARE_MS);
    } catch (error) {
      this.logger.debug(`could not tell the other gateways this one's hosts: ${(error as Error).message}`);
    }
  }

  /** Every other gateway's hosts (a shared queue); none when the queue is this gateway's own or cannot be read. */
  private async otherHosts(): Promise<StatusHostDto[]> {
    const { backend } = this.pool;
    if (!backend.shared || !backend.sharedHosts) return [];
    try {
      return (await backend.sharedHosts(this.config.gatewayId)) as StatusHostDto[];
    } catch {
      return [];
    }
  }

  private async ownStatusHosts(hosts: readonly VramHostDto[]): Promise<StatusHostDto[]> {
    const waiting: number[] = [];
    for (const session of this.hosts.sessions) waiting.push(await this.pool.waitingFor(session.id));
    return hosts.map((host, i) => this.statusHost(host, this.hosts.sessions[i], waiting[i] ?? 0));
  }

  /**
   * 503 while no model host serves, or when no host's figures can be read at all. With a shared queue the other
   * gateways' hosts are listed and counted too.
   */
  async vram(): Promise<VramReplyDto> {
    const { hosts: own, others } = await this.allHosts();
    const hosts: VramHostDto[] = [
      ...own,
      ...others.map(({ id, device, state, vram }) => ({ id, device, state, vram })),
    ];
    const known = hosts.flatMap((host) => host.vram ?? []);
    return { ...combine(known), hosts };
  }

  /** This gateway's hosts (503 as vram() says), and the other gateways' (a shared queue). */
  private async allHosts(): Promise<{ hosts: VramHostDto[]; others: StatusHostDto[] }> {
    const own = await this.ownVram();
    return { hosts: own.hosts, others: await this.otherHosts() };
  }

  private async ownVram(): Promise<VramReplyDto> {
    const sessions = this.hosts.sessions;
    const serving = sessions.filter((session) => session.connection.unavailableReason === undefined);
    if (serving.length === 0) {
      throw new ModelHostUnavailableError(sessions[0]?.connection.unavailableReason ?? 'no model host');
    }
    // No figures yet (a host has just (re)started): read them once; later requests answer from state.
    await Promise.all(
      serving.filter((session) => session.registry.lastMemory === undefined).map((session) => session.memory.refresh()),
    );
    const hosts = sessions.map((session) => this.hostVram(session));
    const known = hosts.flatMap((host) => host.vram ?? []);
    if (known.length === 0) {
      const failure = serving.map((session) => session.memory.lastFailure).find((reason) => reason !== undefined);
      throw new ModelHostUnavailableError(failure ?? 'its memory figures are not known yet');
    }
    return { ...combine(known), hosts };
  }

  async status(): Promise<ModelsStatusDto> {
    const { hosts, others } = await this.allHosts();
    const vram = combine([...hosts, ...others].flatMap((host) => host.vram ?? []));
    const failure = this.modes.lastReloadError;
    const switchFailure = this.pool.lastSwitchError;
    const queueSize = await this.pool.queueSize;
    return {
      current_mode: this.currentMode() ?? null,
      queue_size: queueSize,
      vram,
      hosts: [...(await this.ownStatusHosts(hosts)), ...others],
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

  /** The mode most recently made active on any host. */
  currentMode(): string | undefined {
    let latest: { mode: string; at: number } | undefined;
    for (const worker of this.pool.workers) {
      const mode = worker.session.registry.currentMode;
      if (mode !== undefined && (!latest || worker.activatedAt > latest.at)) latest = { mode, at: worker.activatedAt };
    }
    return latest?.mode;
  }

  private hostVram(session: HostSession): VramHostDto {
    const { registry, connection } = session;
    const stats = registry.lastMemory;
    const at = registry.lastMemoryAt;
    let vram: HostVramDto | null = null;
    if (stats !== undefined && at !== undefined && connection.unavailableReason === undefined) {
      const config = this.modes.config;
      const cached = this.rendered.get(session.id);
      if (cached?.stats === stats && cached.at === at && cached.config === config) vram = cached.view;
      else {
        const current = new Set([...config.modes.values()].map((mode) => mode.key));
        vram = { ...toVramView(stats, session.id, current), as_of: new Date(at).toISOString() };
        this.rendered.set(session.id, { stats, at, config, view: vram });
      }
    }
    return { id: session.id, device: session.device, state: connection.state, vram };
  }

  /** `waiting`: the jobs waiting bound to this host. */
  private statusHost(host: VramHostDto, session: HostSession | undefined, waiting: number): StatusHostDto {
    return {
      ...host,
      current_mode: session?.registry.currentMode ?? null,
      queue_size: session ? this.pool.runningOn(session.id) + waiting : 0,
    };
  }

  private memoryPolicy(): ModePolicyDto[] {
    const tiers = new Map<string, 'device' | 'ram'>();
    // The modes on each base pipeline on a device (keyed by host and base): a pipeline leaves with its last user.
    const sharers = new Map<string, Set<string>>();
    for (const session of this.hosts.sessions) {
      const onDevice = (session.registry.lastMemory?.models ?? []).filter((model) => !model.inRamTier);
      const bases = new Map<string, string[]>();
      for (const model of onDevice)
        bases.set(model.baseKey, [...(bases.get(model.baseKey) ?? []), modeOfKey(model.key)]);
      for (const group of bases.values()) {
        for (const mode of group) sharers.set(mode, new Set([...(sharers.get(mode) ?? []), ...group]));
      }
      for (const entry of session.registry.residentModels()) {
        // On a device anywhere wins over a RAM tier somewhere.
        if (tiers.get(entry.mode) !== 'device') tiers.set(entry.mode, entry.tier);
      }
    }
    return [...this.modes.config.modes.values()].map((mode) => {
      const resident = tiers.get(mode.name) ?? null;
      const expires =
        resident === 'device' ? this.keepAlive.expiresAt(mode.name, [...(sharers.get(mode.name) ?? [])]) : undefined;
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

/**
 * The spec's vram object for one host; models parked in its RAM tier are not on the device and not listed. A key
 * that no mode of `current` (the running configuration's keys) has any more is stale, as one whose files changed.
 */
export function toVramView(stats: MemoryStats, host: string, current?: ReadonlySet<string>): Omit<VramDto, 'as_of'> {
  const models = stats.models
    .filter((model) => !model.inRamTier)
    .map((model) => ({
      name: modeOfKey(model.key),
      model_path: model.modelPath,
      vram_gb: gigabytes(model.bytes),
      loras: model.loras.map((lora) => ({ path: lora.path, strength: lora.strength, adapter_name: lora.adapterName })),
      key: model.key,
      architecture: model.architecture,
      stale: model.stale || (current !== undefined && !current.has(model.key)),
      bytes: model.bytes,
      host,
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

/**
 * The spec's keys over several hosts: devices named once each, totals summed (from the rounded figures, so that
 * they add up as shown), every model, `as_of` the oldest host's (every figure is at least that fresh).
 */
function combine(views: readonly HostVramDto[]): VramDto {
  const [first] = views;
  if (!first || views.length === 1) return first;
  const total = round(
    views.reduce((sum, view) => sum + view.total_gb, 0),
    2,
  );
  const used = round(
    views.reduce((sum, view) => sum + view.used_gb, 0),
    2,
  );
  const models = views.flatMap((view) => view.models);
  return {
    device: unique(views.map((view) => view.device)),
    total_gb: total,
    used_gb: used,
    available_gb: round(
      views.reduce((sum, view) => sum + view.available_gb, 0),
      2,
    ),
    usage_percent: total > 0 ? round((used / total) * 100, 1) : 0,
    models_loaded: models.length,
    models,
    device_type: unique(views.map((view) => view.device_type)),
    as_of: views.map((view) => view.as_of).sort()[0] ?? first.as_of,
  };
}

function unique(names: readonly string[]): string {
  return [...new Set(names)].join(', ');
}

function gigabytes(bytes: number): number {
  return round(bytes / BYTES_PER_GB, 2);
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}
