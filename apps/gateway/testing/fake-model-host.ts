import {
  JobCancelledError,
  ModelHostUnavailableError,
  ModelNotLoadedError,
  UnknownTaskError,
} from '../src/errors/domain.errors.js';
import { modeOfKey } from '../src/modes/mode-key.js';
import type { ResolvedMode } from '../src/modes/mode.types.js';
import type { HostSpec } from '../src/model-host/host-spec.js';
import type { RegistryService } from '../src/registry/registry.service.js';
import type { ModelHost, ModelHostHealth, ModelHostProcess } from '../src/model-host/model-host.js';
import type {
  BatchMember,
  GenerateOptions,
  GenerateParams,
  GeneratedImage,
  InventoryFile,
  LoadResult,
  MemoryStats,
  ModelInventory,
  PrefetchResult,
} from '../src/model-host/model-host.types.js';

/** A ModelHostClient stand-in: records calls, answers at once, can fail or hold a generation open. */
export class FakeModelHost implements ModelHost {
  readonly calls: string[] = [];
  readonly generations: GenerateParams[] = [];
  readonly signals: AbortSignal[] = [];
  failLoad: Error | undefined;
  /** Thrown by the next generation only. */
  failGenerateOnce: Error | undefined;
  /** While set, generations wait for it (or for their signal). */
  hold: Promise<void> | undefined;
  private readonly dropHeld: ((error: Error) => void)[] = [];
  /** While set, loads wait for it. */
  holdLoad: Promise<void> | undefined;
  serving = true;
  /** Keys loaded, as GetMemory reports them. */
  readonly resident = new Map<string, ResolvedMode>();
  /** What listModels answers: the inventory of the model roots. */
  inventoryFiles: InventoryFile[] = [];
  /** Every setModelRoots call's roots, in order. */
  readonly rootsSet: string[][] = [];
  /** Model host tasks: what runTask answers for a name (a function of the args), else an unknown-task error. */
  readonly tasks = new Map<string, (args: Readonly<Record<string, unknown>>) => unknown>([['echo', (args) => args]]);

  async load(mode: ResolvedMode): Promise<LoadResult> {
    this.calls.push(`load ${mode.name}`);
    await Promise.resolve();
    if (this.holdLoad) await this.holdLoad;
    if (this.failLoad) throw this.failLoad;
    this.resident.set(mode.key, mode);
    return {
      key: mode.key,
      architecture: 'sd15',
      bytes: 2 ** 20,
      estimatedBytes: 2 ** 20,
      loadSeconds: 0.1,
      source: 'disk',
      evicted: [],
      evictedToRam: [],
      evictedOnOom: [],
      device: 'cpu',
      prefetched: false,
    };
  }

  /** Every prefetch hint's mode names, in order. */
  readonly prefetches: string[][] = [];

  prefetch(modes: readonly ResolvedMode[]): Promise<PrefetchResult> {
    this.prefetches.push(modes.map((mode) => mode.name));
    const keys = modes.map((mode) => mode.key);
    return Promise.resolve({
      wanted: keys.filter((key) => !this.resident.has(key)),
      skipped: keys.filter((key) => this.resident.has(key)),
    });
  }

  generate(params: GenerateParams, options: GenerateOptions = {}): Promise<GeneratedImage> {
    this.calls.push(`generate ${modeOfKey(params.key)} ${params.prompt}`);
    return this.run(params, options);
  }

  /** Every batch's members' parameters, in order. */
  readonly batches: GenerateParams[][] = [];

  /** Each member as `generate` runs it (failGenerateOnce fails the first member only), recorded as one call. */
  generateBatch(members: readonly BatchMember[]): Promise<GeneratedImage>[] {
    const [first] = members;
    if (first) this.calls.push(`batch ${modeOfKey(first.params.key)} ${members.map((m) => m.params.prompt).join('|')}`);
    this.batches.push(members.map((member) => member.params));
    return members.map((member) => this.run(member.params, member.options));
  }

  private async run(params: GenerateParams, options: GenerateOptions = {}): Promise<GeneratedImage> {
    this.generations.push(params);
    if (options.signal) this.signals.push(options.signal);
    // As the real repository: a signal aborted before the call (a job cancelled while it activated) never fires.
    if (options.signal?.aborted) throw new JobCancelledError('generation cancelled before it started');
    const failure = this.failGenerateOnce;
    this.failGenerateOnce = undefined;
    if (failure) throw failure;
    for (let step = 1; step <= params.steps; step += 1) {
      options.onProgress?.({ step, totalSteps: params.steps, elapsedSeconds: 0 });
    }
    const hold = this.hold;
    if (hold) {
      await new Promise<void>((resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(new JobCancelledError('generation cancelled')));
        this.dropHeld.push(reject);
        void hold.then(resolve);
      });
    }
    return {
      png: Buffer.from(`png:${params.prompt}`),
      seed: params.seed,
      width: params.width,
      height: params.height,
      superresApplied: params.superres,
    };
  }

  getMemory(): Promise<MemoryStats> {
    return Promise.resolve({
      device: 'cpu',
      deviceName: 'Fake CPU',
      totalBytes: 8 * 2 ** 30,
      usedBytes: 2 ** 30,
      availableBytes: 7 * 2 ** 30,
      models: [...this.resident.values()].map((mode) => ({
        key: mode.key,
        modelPath: mode.modelPath,
        bytes: 2 ** 20,
        loras: mode.loras.map((lora) => ({
          path: lora.absolutePath,
          strength: lora.strength,
          adapterName: lora.adapterName,
        })),
        tier: 'device',
        lastUsedUnixMs: 0,
        architecture: 'sd15',
        inRamTier: false,
        baseKey: mode.key,
        stale: false,
      })),
      reserveBytes: 0,
      ramTierBytes: 0,
      ramTierCapacityBytes: 0,
    });
  }

  unload(key: string): Promise<number> {
    this.calls.push(`unload ${key}`);
    if (!this.resident.delete(key)) return Promise.reject(new ModelNotLoadedError(`model '${key}' is not loaded`));
    return Promise.resolve(2 ** 20);
  }

  offload(key: string): Promise<{ freedBytes: number; parked: boolean }> {
    this.calls.push(`offload ${key}`);
    if (!this.resident.delete(key)) return Promise.reject(new ModelNotLoadedError(`model '${key}' is not loaded`));
    return Promise.resolve({ freedBytes: 2 ** 20, parked: false });
  }

  listModels(): Promise<ModelInventory> {
    return Promise.resolve({ roots: this.rootsSet.at(-1) ?? [], polling: false, files: this.inventoryFiles });
  }

  setModelRoots(roots: readonly string[]): Promise<string[]> {
    this.rootsSet.push([...roots]);
    return Promise.resolve([...roots]);
  }

  async runTask(name: string, args: Readonly<Record<string, unknown>> = {}): Promise<unknown> {
    this.calls.push(`task ${name}`);
    await Promise.resolve();
    const task = this.tasks.get(name);
    if (!task) throw new UnknownTaskError(`unknown task '${name}'`);
    return task(args);
  }

  /** While set, the health check gets no answer (whatever `serving` says). */
  unreachable = false;

  healthStatus(): Promise<ModelHostHealth> {
    if (this.unreachable) return Promise.resolve('no-answer');
    return Promise.resolve(this.serving ? 'serving' : 'not-serving');
  }

  /** As the process dying does to calls in flight: held generations fail with a dropped connection. */
  dropConnections(): void {
    for (const reject of this.dropHeld.splice(0)) reject(new ModelHostUnavailableError('Connection dropped'));
  }

  /** How many times waitForReady found the model host not serving: a test can wait until someone is waiting. */
  notServingPolls = 0;

  /** Resolves once `serving` is true (and the model host reachable). */
  async waitForReady(_timeoutMs?: number, signal?: AbortSignal): Promise<void> {
    while (!this.serving || this.unreachable) {
      this.notServingPolls += 1;
      if (signal?.aborted) throw new ModelHostUnavailableError('stopped waiting for the model host');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  close(): void {}
}

/** A ModelHostProcessService stand-in: the model host is "started" and ready when `ready` resolves. */
export class FakeModelHostProcess implements ModelHostProcess {
  /** Not a process the gateway runs: a loss is recovered without starting anything. */
  readonly managed: boolean = false;
  started = false;
  ready: Promise<void> = Promise.resolve();

  private readonly lossListeners: ((reason: string) => void)[] = [];

  start(): void {
    this.started = true;
  }

  onLost(listener: (reason: string) => void): void {
    this.lossListeners.push(listener);
  }

  /** As if the model host process died. */
  lose(reason = 'the model host was killed by SIGKILL unexpectedly'): void {
    for (const listener of this.lossListeners) listener(reason);
  }

  waitForReady(): Promise<void> {
    return this.ready;
  }

  stopped = false;

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  killNow(): void {
    this.stopped = true;
  }
}

/**
 * ModelHostFactory over fakes: the first host gets `first` and `process`, the others fakes of their own
 * (`hosts` lists every one made, in order).
 */
export class FakeModelHostFactory {
  readonly hosts: { spec: HostSpec; client: FakeModelHost; process: FakeModelHostProcess }[] = [];

  constructor(
    private readonly first: FakeModelHost = new FakeModelHost(),
    private readonly firstProcess: FakeModelHostProcess = new FakeModelHostProcess(),
    /** The first host's registry, made before the engine: a test holds it from the start. */
    readonly firstRegistry?: RegistryService,
    private readonly gpus = 0,
  ) {}

  create(spec: HostSpec): { client: FakeModelHost; process: FakeModelHostProcess; registry?: RegistryService } {
    const first = this.hosts.length === 0;
    const made = first
      ? { spec, client: this.first, process: this.firstProcess }
      : { spec, client: new FakeModelHost(), process: new FakeModelHostProcess() };
    this.hosts.push(made);
    return first && this.firstRegistry ? { ...made, registry: this.firstRegistry } : made;
  }

  cudaDevices(): number {
    return this.gpus;
  }
}
