import { loadConfig, type AppConfig } from '../src/config/app-config.js';
import { ModeNotFoundError } from '../src/errors/domain.errors.js';
import type { ResolvedMode } from '../src/modes/mode.types.js';
import { parseModesConfig } from '../src/modes/modes-config.loader.js';
import type { ModesService } from '../src/modes/modes.service.js';
import { JobEvents } from '../src/queue/job.events.js';
import { JobStore } from '../src/queue/job.store.js';
import type { GenerationParams } from '../src/queue/job.types.js';
import { MemoryQueueBackend } from '../src/queue/memory-queue.backend.js';
import type { QueueBackend } from '../src/queue/queue-backend.js';
import { WorkerPool } from '../src/queue/worker-pool.service.js';
import { ModelEvents } from '../src/registry/model.events.js';
import { RegistryService } from '../src/registry/registry.service.js';
import { HostsService } from '../src/model-host/hosts.service.js';
import type { ModelHostFactory } from '../src/model-host/model-host.factory.js';
import { FakeModelHostFactory, FakeModelHostProcess, FakeModelHost } from './fake-model-host.js';

export const MODES = parseModesConfig(
  'model_root: /models\ndefault_mode: a\nmodes:\n  a:\n    model: a.safetensors\n  b:\n    model: b.safetensors\n',
  { source: 'test', baseDir: '/', allowPickle: false },
);

/** The part of ModesService the engine reads, over MODES. */
export const fakeModes = {
  config: MODES,
  get defaultMode(): ResolvedMode {
    return fakeModes.getMode('a');
  },
  getMode(name: string): ResolvedMode {
    const mode = MODES.modes.get(name);
    if (!mode) throw new ModeNotFoundError(name);
    return mode;
  },
} as unknown as ModesService;

export const PARAMS: GenerationParams = {
  prompt: 'a cat',
  negativePrompt: '',
  width: 64,
  height: 64,
  steps: 2,
  guidanceScale: 1,
  seed: 7,
  superres: false,
};

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A job engine over fake model hosts and processes, as the unit tests build it; `close` shuts every one. The first
 * host is `modelHost` / `process` / `registry`; SIDECAR_DEVICES in `env` makes more (`factory.hosts`, `hosts`).
 */
export class JobEngineFixture {
  readonly modelHost = new FakeModelHost();
  readonly process = new FakeModelHostProcess();
  readonly events = new JobEvents();
  readonly modelEvents = new ModelEvents();
  /** The first host's registry (every pool's first host uses it). */
  readonly registry = new RegistryService('test/local', this.modelEvents);
  readonly factory = new FakeModelHostFactory(this.modelHost, this.process, this.registry);
  /** Wraps each pool's in-memory backend (answeringLater: a backend that answers asynchronously). */
  wrapBackend: (backend: QueueBackend) => QueueBackend = (backend) => backend;
  /** Makes each pool's backend instead of the in-memory one (a shared backend: the Redis one). */
  makeBackend: ((config: AppConfig, store: JobStore) => QueueBackend) | undefined;
  /** The hosts of the last pool made. */
  hosts!: HostsService;
  private readonly pools: WorkerPool[] = [];

  pool(queueMax = 64, env: Record<string, string> = {}, modes: ModesService = fakeModes): WorkerPool {
    // One job per model host call unless a test asks for batches (MAX_BATCH).
    const config = loadConfig({ QUEUE_MAX: String(queueMax), MAX_BATCH: '1', GATEWAY_ID: 'test', ...env });
    this.hosts = new HostsService(config, this.factory as unknown as ModelHostFactory, this.modelEvents);
    const created = new WorkerPool(
      config,
      modes,
      this.hosts,
      this.wrapBackend(
        this.makeBackend?.(config, new JobStore(config, this.events)) ??
          new MemoryQueueBackend(config, new JobStore(config, this.events)),
      ),
    );
    this.pools.push(created);
    return created;
  }

  close(): void {
    for (const created of this.pools.splice(0)) created.beginShutdown();
  }
}
