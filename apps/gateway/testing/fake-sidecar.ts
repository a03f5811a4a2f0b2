import { JobCancelledError } from '../src/errors/domain.errors.js';
import type { ResolvedMode } from '../src/modes/mode.types.js';
import type {
  GenerateOptions,
  GenerateParams,
  GeneratedImage,
  LoadResult,
  MemoryStats,
} from '../src/sidecar/sidecar.types.js';

/** A SidecarRepository stand-in: records calls, answers at once, can fail or hold a generation open. */
export class FakeSidecarRepository {
  readonly calls: string[] = [];
  readonly generations: GenerateParams[] = [];
  readonly signals: AbortSignal[] = [];
  failLoad: Error | undefined;
  /** Thrown by the next generation only. */
  failGenerateOnce: Error | undefined;
  /** While set, generations wait for it (or for their signal). */
  hold: Promise<void> | undefined;
  serving = true;

  async load(mode: ResolvedMode): Promise<LoadResult> {
    this.calls.push(`load ${mode.name}`);
    await Promise.resolve();
    if (this.failLoad) throw this.failLoad;
    return {
      key: mode.key,
      architecture: 'sd15',
      bytes: 2 ** 20,
      estimatedBytes: 2 ** 20,
      loadSeconds: 0.1,
      source: 'disk',
      evicted: [],
      evictedToRam: [],
      device: 'cpu',
    };
  }

  async generate(params: GenerateParams, options: GenerateOptions = {}): Promise<GeneratedImage> {
    this.calls.push(`generate ${params.key.replace(/-[0-9a-f]{12}$/, '')} ${params.prompt}`);
    this.generations.push(params);
    if (options.signal) this.signals.push(options.signal);
    const failure = this.failGenerateOnce;
    this.failGenerateOnce = undefined;
    if (failure) throw failure;
    const hold = this.hold;
    if (hold) {
      await new Promise<void>((resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(new JobCancelledError('generation cancelled')));
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
      models: [],
      reserveBytes: 0,
      ramTierBytes: 0,
      ramTierCapacityBytes: 0,
    });
  }

  isServing(): Promise<boolean> {
    return Promise.resolve(this.serving);
  }

  waitForReady(): Promise<void> {
    return Promise.resolve();
  }

  onModuleDestroy(): void {}
}

/** A SidecarProcessService stand-in: the sidecar is "started" and ready when `ready` resolves. */
export class FakeSidecarProcess {
  started = false;
  ready: Promise<void> = Promise.resolve();

  start(): void {
    this.started = true;
  }

  waitForReady(): Promise<void> {
    return this.ready;
  }

  onModuleDestroy(): void {}
}
