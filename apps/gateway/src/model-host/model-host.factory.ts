import { Inject, Injectable } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { visibleCudaDevices, type HostSpec } from './host-spec.js';
import type { ModelHost, ModelHostProcess } from './model-host.js';
import { ModelHostProcessService } from './model-host-process.service.js';
import type { ModelHostEndpoint } from './model-host-endpoint.js';
import type { ModelEvents } from '../registry/model.events.js';
import type { RegistryService } from '../registry/registry.service.js';
import { ModelHostClient } from './model-host.client.js';

/** Makes each host's gRPC client and process; the unit tests replace it with one that makes fakes. */
@Injectable()
export class ModelHostFactory {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  create(
    spec: HostSpec,
    endpoint: ModelHostEndpoint,
    _events: ModelEvents,
  ): { client: ModelHost; process: ModelHostProcess; registry?: RegistryService } {
    const client = new ModelHostClient(endpoint, this.config);
    return { client, process: new ModelHostProcessService(this.config, spec, endpoint, client) };
  }

  /** For SIDECAR_DEVICES=auto. */
  cudaDevices(): number {
    return visibleCudaDevices();
  }
}
