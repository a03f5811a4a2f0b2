import type { AppConfig } from '../config/app-config.js';
import { MemoryRefresher } from '../memory/memory-refresher.service.js';
import type { ModelEvents } from '../registry/model.events.js';
import { RegistryService } from '../registry/registry.service.js';
import type { HostSpec } from './host-spec.js';
import type { ModelHost, ModelHostProcess } from './model-host.js';
import { ModelHostConnection } from './model-host.connection.js';

/**
 * Everything the gateway keeps about one model host, and nothing about any other: its gRPC client, its process (when
 * the gateway runs it), its connection (the one owner of its lifecycle), its registry (what it holds) and the
 * refresher of its memory figures. The job engine gives each session a worker of its own.
 */
export class HostSession {
  readonly registry: RegistryService;
  readonly memory: MemoryRefresher;
  readonly connection: ModelHostConnection;

  constructor(
    readonly spec: HostSpec,
    readonly client: ModelHost,
    readonly process: ModelHostProcess,
    events: ModelEvents,
    config: AppConfig,
    /** A registry made beforehand (the unit tests hold the first host's before the engine exists). */
    registry: RegistryService = new RegistryService(spec.id, events),
  ) {
    this.registry = registry;
    this.memory = new MemoryRefresher(this.registry, client);
    this.connection = new ModelHostConnection(client, process, this.registry, config);
  }

  /** `<gateway id>/<device>`: see HostSpec. */
  get id(): string {
    return this.spec.id;
  }

  /** The device as configured, or as the host reported it once it serves (a host that chose its own). */
  get device(): string {
    return this.spec.device ?? this.registry.lastMemory?.device ?? this.spec.addr ?? 'auto';
  }

  /** After the engine drained: no more memory reads, the process stopped, the channels closed. */
  async stop(): Promise<void> {
    this.memory.close();
    await this.process.stop();
    this.client.close();
  }
}
