import { loadConfig } from '../src/config/app-config.js';
import { ModeNotFoundError } from '../src/errors/domain.errors.js';
import { MemoryRefresher } from '../src/memory/memory-refresher.service.js';
import type { ResolvedMode } from '../src/modes/mode.types.js';
import { parseModesConfig } from '../src/modes/modes-config.loader.js';
import type { ModesService } from '../src/modes/modes.service.js';
import { JobEvents } from '../src/queue/job.events.js';
import { JobStore } from '../src/queue/job.store.js';
import type { GenerationParams } from '../src/queue/job.types.js';
import { WorkerPool } from '../src/queue/worker-pool.service.js';
import { RegistryService } from '../src/registry/registry.service.js';
import { ModelHostConnection } from '../src/model-host/model-host.connection.js';
import { FakeModelHostProcess, FakeModelHost } from './fake-model-host.js';

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

/** A job engine over the fake model host and process, as the unit tests build it; `close` shuts every one. */
export class JobEngineFixture {
  readonly modelHost = new FakeModelHost();
  readonly registry = new RegistryService();
  readonly process = new FakeModelHostProcess();
  readonly events = new JobEvents();
  private readonly pools: WorkerPool[] = [];

  pool(queueMax = 64, env: Record<string, string> = {}, modes: ModesService = fakeModes): WorkerPool {
    // One job per model host call unless a test asks for batches (MAX_BATCH).
    const config = loadConfig({ QUEUE_MAX: String(queueMax), MAX_BATCH: '1', ...env });
    const connection = new ModelHostConnection(this.modelHost, this.process, this.registry, config);
    const created = new WorkerPool(
      config,
      modes,
      connection,
      this.registry,
      new MemoryRefresher(this.registry, this.modelHost),
      new JobStore(config, this.events),
    );
    this.pools.push(created);
    return created;
  }

  close(): void {
    for (const created of this.pools.splice(0)) created.beginShutdown();
  }
}
