import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ModelEvents } from '../registry/model.events.js';
import { HostSession } from './host-session.js';
import { hostSpecs } from './host-spec.js';
import { endpointOf, SocketDir } from './model-host-endpoint.js';
import { ModelHostFactory } from './model-host.factory.js';

/**
 * The model hosts this gateway uses, one HostSession each: one per device in SIDECAR_DEVICES (`auto`: one per
 * visible GPU), plus one per address in SIDECAR_ADDRS. The first is the default host (the inventory of model files
 * is read from it). Stopped after the job engine has drained (its module is destroyed first).
 */
@Injectable()
export class HostsService implements OnModuleDestroy {
  private readonly logger = new Logger(HostsService.name);
  readonly sessions: readonly HostSession[];
  private readonly socketDir: SocketDir;
  private readonly byId: ReadonlyMap<string, HostSession>;

  constructor(@Inject(APP_CONFIG) config: AppConfig, factory: ModelHostFactory, events: ModelEvents) {
    this.socketDir = new SocketDir(this.logger);
    const cuda = config.modelHostDevices === 'auto' ? factory.cudaDevices() : 0;
    this.sessions = hostSpecs(config, cuda).map((spec, index) => {
      const { client, process, registry } = factory.create(spec, endpointOf(spec, index, this.socketDir), events);
      return new HostSession(spec, client, process, events, config, registry);
    });
    this.byId = new Map(this.sessions.map((session) => [session.id, session]));
    if (this.sessions.length > 1) {
      this.logger.log(`${this.sessions.length} model hosts: ${this.sessions.map((session) => session.id).join(', ')}`);
    }
  }

  /** The first host: the one whose inventory of model files GET /api/models lists. */
  get default(): HostSession {
    const first = this.sessions[0];
    if (!first) throw new Error('no model host is configured');
    return first;
  }

  get(id: string): HostSession | undefined {
    return this.byId.get(id);
  }

  /** The hosts that take work now, the default one first. */
  accepting(): HostSession[] {
    return this.sessions.filter((session) => session.connection.accepting);
  }

  /** Ends every model host the gateway runs at once (SIGKILL): for a gateway whose own start failed. */
  killNow(): void {
    for (const session of this.sessions) session.process.killNow();
    this.socketDir.remove();
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.sessions.map((session) => session.stop()));
    this.socketDir.remove();
  }
}
