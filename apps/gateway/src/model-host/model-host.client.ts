import { setTimeout as sleep } from 'node:timers/promises';

import * as grpc from '@grpc/grpc-js';

import { DEFAULT_SAMPLER } from '../common/samplers.js';
import type { AppConfig } from '../config/app-config.js';
import { JobCancelledError, ModelHostError, ModelHostUnavailableError } from '../errors/domain.errors.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import type { HealthClient } from './generated/grpc/health/v1/Health.js';
import type { GenerateEvent__Output } from './generated/modelhost/v1/GenerateEvent.js';
import type { GeneratedImage__Output } from './generated/modelhost/v1/GeneratedImage.js';
import type { ListModelsReply__Output } from './generated/modelhost/v1/ListModelsReply.js';
import type { LoadModelReply__Output } from './generated/modelhost/v1/LoadModelReply.js';
import type { MemoryStats__Output } from './generated/modelhost/v1/MemoryStats.js';
import type { ModelHostClient as ModelHostStub } from './generated/modelhost/v1/ModelHost.js';
import type { RunTaskReply__Output } from './generated/modelhost/v1/RunTaskReply.js';
import type { SetModelRootsReply__Output } from './generated/modelhost/v1/SetModelRootsReply.js';
import type { GenerateBatchEvent__Output } from './generated/modelhost/v1/GenerateBatchEvent.js';
import type { GenerateRequest } from './generated/modelhost/v1/GenerateRequest.js';
import { memberErrorToDomainError, toDomainError, type CallContext } from './grpc-error.mapper.js';
import type { ModelHost, ModelHostHealth } from './model-host.js';
import { loadModelHostProto } from './proto-package.loader.js';
import type { ModelHostEndpoint } from './model-host-endpoint.js';
import type {
  BatchMember,
  GenerateOptions,
  GenerateParams,
  GeneratedImage,
  LoadResult,
  PrefetchResult,
  MemoryStats,
  ModelInventory,
  ResidentModel,
} from './model-host.types.js';

/** The service whose health says the model host can take work (it reports NOT_SERVING while it drains). */
const MODEL_HOST_SERVICE = 'modelhost.v1.ModelHost';
const HEALTH_CHECK_TIMEOUT_MS = 2_000;
const HEALTH_POLL_INTERVAL_MS = 250;
const MEMORY_TIMEOUT_MS = 10_000;
/** A prefetch hint is answered at once (the build runs in the background). */
const PREFETCH_TIMEOUT_MS = 10_000;
const UNLOAD_TIMEOUT_MS = 60_000;
/** Setting the roots rescans them for the model host's inventory: folders of many files take a while. */
const ROOTS_TIMEOUT_MS = 60_000;

/** The one class that speaks gRPC to the model host. Every call has a deadline; every failure becomes a domain error. */
export class ModelHostClient implements ModelHost {
  private readonly stub: ModelHostStub;
  private readonly health: HealthClient;
  /** GENERATE_TIMEOUT_MS bounds generations and tasks; SWITCH_TIMEOUT_MS bounds loads. */
  private readonly deviceWorkTimeoutMs: number;
  private readonly loadTimeoutMs: number;

  constructor(endpoint: ModelHostEndpoint, config: AppConfig) {
    const proto = loadModelHostProto();
    const credentials = grpc.credentials.createInsecure();
    const options: grpc.ChannelOptions = {
      // Images come back whole in one message; a large upscaled PNG is far past the 4 MiB default.
      'grpc.max_receive_message_length': -1,
      // The model host is local: retry a lost connection within seconds, not the default's up to two minutes.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2_000,
    };
    // Health stays open on the model host (probes hold no secret); everything else carries the token when set.
    this.stub = new proto.modelhost.v1.ModelHost(endpoint.address, credentials, {
      ...options,
      ...(config.modelHostToken !== undefined && { interceptors: [withToken(config.modelHostToken)] }),
    });
    this.health = new proto.grpc.health.v1.Health(endpoint.address, credentials, options);
    this.deviceWorkTimeoutMs = config.generateTimeoutMs;
    this.loadTimeoutMs = config.switchTimeoutMs;
  }

  close(): void {
    this.stub.close();
    this.health.close();
  }

  /** Makes the mode's pipeline resident (idempotent on the model host's side). */
  load(mode: ResolvedMode): Promise<LoadResult> {
    const context: CallContext = { rpc: 'load', subject: mode.name, timeoutMs: this.loadTimeoutMs };
    return new Promise<LoadModelReply__Output>((resolve, reject) => {
      this.stub.LoadModel(loadRequestOf(mode), this.deadline(context), this.settle(context, resolve, reject));
    }).then(toLoadResult);
  }

  prefetch(modes: readonly ResolvedMode[]): Promise<PrefetchResult> {
    const subject = modes.map((mode) => mode.name).join(', ') || 'nothing';
    const context: CallContext = { rpc: 'prefetch', subject, timeoutMs: PREFETCH_TIMEOUT_MS };
    return new Promise<PrefetchResult>((resolve, reject) => {
      this.stub.Prefetch(
        { loads: modes.map(loadRequestOf) },
        this.deadline(context),
        this.settle(context, (reply) => resolve({ wanted: reply.wanted, skipped: reply.skipped }), reject),
      );
    });
  }

  /** Drops a pipeline; resolves to the bytes freed. */
  unload(key: string): Promise<number> {
    const context: CallContext = { rpc: 'unload', subject: key, timeoutMs: UNLOAD_TIMEOUT_MS };
    return new Promise<number>((resolve, reject) => {
      this.stub.UnloadModel(
        { key },
        this.deadline(context),
        this.settle(context, (reply) => resolve(reply.freed_bytes), reject),
      );
    });
  }

  /**
   * Takes the key's pipeline off the device: into the RAM tier when it fits there (the key, and every key sharing
   * the pipeline, stay loaded), else the key is unloaded. Resolves to the bytes freed and whether it was parked.
   */
  offload(key: string): Promise<{ freedBytes: number; parked: boolean }> {
    const context: CallContext = { rpc: 'unload', subject: key, timeoutMs: UNLOAD_TIMEOUT_MS };
    return new Promise((resolve, reject) => {
      this.stub.UnloadModel(
        { key, to_ram_tier: true },
        this.deadline(context),
        this.settle(context, (reply) => resolve({ freedBytes: reply.freed_bytes, parked: reply.parked }), reject),
      );
    });
  }

  getMemory(): Promise<MemoryStats> {
    const context: CallContext = { rpc: 'memory', subject: 'memory', timeoutMs: MEMORY_TIMEOUT_MS };
    return new Promise<MemoryStats__Output>((resolve, reject) => {
      this.stub.GetMemory({}, this.deadline(context), this.settle(context, resolve, reject));
    }).then(toMemoryStats);
  }

  /** The files under the model roots as the model host's watcher sees them now: nothing is rescanned. */
  listModels(): Promise<ModelInventory> {
    const context: CallContext = { rpc: 'memory', subject: 'model inventory', timeoutMs: MEMORY_TIMEOUT_MS };
    return new Promise<ListModelsReply__Output>((resolve, reject) => {
      this.stub.ListModels({}, this.deadline(context), this.settle(context, resolve, reject));
    }).then((reply) => ({
      roots: reply.roots,
      polling: reply.polling,
      files: reply.models.map((file) => ({
        path: file.path,
        root: file.root,
        architecture: file.architecture,
        format: file.format,
        sizeBytes: file.size_bytes,
        mtimeUnixMs: file.mtime_unix_ms,
        reason: file.reason,
        residentKeys: file.resident_keys,
        stale: file.stale,
      })),
    }));
  }

  /**
   * Replaces the folders the model host may load from (and that its inventory watches): it resolves every path of
   * a load with its symlinks and refuses one outside them. Resolves to the roots as the model host resolved them.
   */
  setModelRoots(roots: readonly string[]): Promise<string[]> {
    const context: CallContext = { rpc: 'roots', subject: roots.join(', '), timeoutMs: ROOTS_TIMEOUT_MS };
    return new Promise<SetModelRootsReply__Output>((resolve, reject) => {
      this.stub.SetModelRoots({ roots: [...roots] }, this.deadline(context), this.settle(context, resolve, reject));
    }).then((reply) => reply.roots);
  }

  /** Runs one generation; aborting `signal` cancels the call and rejects with JobCancelledError. */
  generate(params: GenerateParams, options: GenerateOptions = {}): Promise<GeneratedImage> {
    const { signal, onProgress } = options;
    if (signal?.aborted) return Promise.reject(new JobCancelledError('generation cancelled before it started'));
    const context: CallContext = { rpc: 'generate', subject: params.key, timeoutMs: this.deviceWorkTimeoutMs };
    return new Promise<GeneratedImage>((resolve, reject) => {
      const call = this.stub.Generate(toGenerateRequest(params), this.deadline(context));
      let image: GeneratedImage | undefined;
      const cancel = (): void => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
      const finish = (outcome: () => void): void => {
        signal?.removeEventListener('abort', cancel);
        outcome();
      };
      call.on('data', (event: GenerateEvent__Output) => {
        if (event.progress) {
          const { step, total_steps, elapsed_seconds } = event.progress;
          onProgress?.({ step, totalSteps: total_steps, elapsedSeconds: elapsed_seconds });
        } else if (event.image) {
          image = toGeneratedImage(event.image);
        }
      });
      call.on('error', (error: grpc.ServiceError) =>
        finish(() =>
          reject(signal?.aborted ? new JobCancelledError('generation cancelled') : toDomainError(error, context)),
        ),
      );
      call.on('end', () =>
        finish(() =>
          image ? resolve(image) : reject(new ModelHostError('the generation stream ended without an image')),
        ),
      );
    });
  }

  /**
   * One GenerateBatch call for the members whose signal has not aborted yet. A member whose signal aborts later is
   * settled as cancelled at once and the model host told to drop it; once none is left waiting, the call itself is
   * cancelled. The whole call has GENERATE_TIMEOUT_MS, like one generation.
   */
  generateBatch(members: readonly BatchMember[]): Promise<GeneratedImage>[] {
    const entries = members.map((member) => new BatchEntry(member));
    const sent = entries.filter((entry) => {
      if (!entry.signal?.aborted) return true;
      entry.reject(new JobCancelledError('generation cancelled before it started'));
      return false;
    });
    const [first] = sent;
    if (!first) return entries.map((entry) => entry.result);
    const context: CallContext = { rpc: 'generate', subject: first.params.key, timeoutMs: this.deviceWorkTimeoutMs };
    const call = this.stub.GenerateBatch(this.deadline(context));
    for (const [position, entry] of sent.entries()) {
      entry.onAbort(() => {
        entry.reject(new JobCancelledError('generation cancelled'));
        if (sent.every((other) => other.settled)) call.cancel();
        else call.write({ cancel_member: position });
      });
    }
    call.on('data', (event: GenerateBatchEvent__Output) => {
      const entry = sent[event.member];
      if (!entry) return;
      if (event.progress) {
        const { step, total_steps, elapsed_seconds } = event.progress;
        if (!entry.settled) entry.onProgress?.({ step, totalSteps: total_steps, elapsedSeconds: elapsed_seconds });
      } else if (event.image) {
        entry.resolve(toGeneratedImage(event.image));
      } else if (event.cancelled) {
        entry.reject(new JobCancelledError('generation cancelled'));
      } else if (event.error) {
        entry.reject(memberErrorToDomainError(event.error.code, event.error.message, context));
      }
      // Every outcome is in: no cancel is left to send.
      if (sent.every((other) => other.settled)) call.end();
    });
    call.on('error', (error: grpc.ServiceError) => {
      for (const entry of sent) {
        entry.reject(
          entry.signal?.aborted ? new JobCancelledError('generation cancelled') : toDomainError(error, context),
        );
      }
    });
    call.on('end', () => {
      for (const entry of sent)
        entry.reject(new ModelHostError("the batch stream ended without this generation's image"));
    });
    call.write({ batch: { members: sent.map((entry) => toGenerateRequest(entry.params)) } });
    return entries.map((entry) => entry.result);
  }

  /**
   * Runs the model host task registered under `name` (a Python plugin; see sidecar/src/modelhost/tasks) with `args`
   * sent as JSON; resolves to its JSON result, parsed. It runs on the model host's device thread, in order with loads
   * and generations. Unknown task: UnknownTaskError; bad args: InvalidRequestError; refused: TaskFailedError.
   */
  runTask(name: string, args: Readonly<Record<string, unknown>> = {}): Promise<unknown> {
    const context: CallContext = { rpc: 'task', subject: name, timeoutMs: this.deviceWorkTimeoutMs };
    return new Promise<RunTaskReply__Output>((resolve, reject) => {
      this.stub.RunTask(
        { name, args_json: JSON.stringify(args) },
        this.deadline(context),
        this.settle(context, resolve, reject),
      );
    }).then((reply) => {
      try {
        return reply.result_json === '' ? null : (JSON.parse(reply.result_json) as unknown);
      } catch {
        throw new ModelHostError(`task '${name}' answered something that is not JSON`);
      }
    });
  }

  /** One health check: true when the model host service says SERVING. */
  isServing(): Promise<boolean> {
    return this.healthStatus().then((status) => status === 'serving');
  }

  /**
   * The health check's answer: `serving`, `not-serving` (the model host said so: starting, or draining), or
   * `no-answer` (unreachable, or too busy to answer within the check's deadline).
   */
  healthStatus(): Promise<ModelHostHealth> {
    return new Promise((resolve) => {
      this.health.Check(
        { service: MODEL_HOST_SERVICE },
        { deadline: Date.now() + HEALTH_CHECK_TIMEOUT_MS },
        (error, reply) => {
          if (error) resolve('no-answer');
          else resolve(reply?.status === 'SERVING' ? 'serving' : 'not-serving');
        },
      );
    });
  }

  /** Polls health until SERVING; rejects with ModelHostUnavailableError after `timeoutMs`, or when `signal` aborts. */
  async waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.isServing())) {
      if (signal?.aborted) throw new ModelHostUnavailableError('stopped waiting for the model host');
      if (Date.now() >= deadline) {
        throw new ModelHostUnavailableError(`the model host was not serving after ${timeoutMs} ms`);
      }
      await sleep(HEALTH_POLL_INTERVAL_MS);
    }
  }

  private deadline(context: CallContext): grpc.CallOptions {
    return { deadline: Date.now() + context.timeoutMs };
  }

  private settle<T>(
    context: CallContext,
    resolve: (reply: T) => void,
    reject: (error: Error) => void,
  ): grpc.requestCallback<T> {
    return (error, reply) => {
      if (error) reject(toDomainError(error, context));
      else if (reply === undefined) reject(new ModelHostError(`empty ${context.rpc} reply`));
      else resolve(reply);
    };
  }
}

const LOAD_SOURCES: Readonly<Record<string, LoadResult['source']>> = {
  LOAD_SOURCE_DISK: 'disk',
  LOAD_SOURCE_RESIDENT: 'resident',
  LOAD_SOURCE_RAM: 'ram',
  LOAD_SOURCE_SHARED_BASE: 'shared-base',
};

/** One member of a batch call: its promise, settled once, and its signal's listener, removed when it settles. */
class BatchEntry {
  readonly result: Promise<GeneratedImage>;
  readonly params: GenerateParams;
  readonly signal: AbortSignal | undefined;
  readonly onProgress: GenerateOptions['onProgress'];
  settled = false;
  private settle!: { resolve: (image: GeneratedImage) => void; reject: (error: Error) => void };
  private abortListener: (() => void) | undefined;

  constructor(member: BatchMember) {
    this.params = member.params;
    this.signal = member.options?.signal;
    this.onProgress = member.options?.onProgress;
    this.result = new Promise<GeneratedImage>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
  }

  onAbort(listener: () => void): void {
    this.abortListener = listener;
    this.signal?.addEventListener('abort', listener, { once: true });
  }

  resolve(image: GeneratedImage): void {
    if (this.finish()) this.settle.resolve(image);
  }

  reject(error: Error): void {
    if (this.finish()) this.settle.reject(error);
  }

  /** True the first time only. */
  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.abortListener) this.signal?.removeEventListener('abort', this.abortListener);
    return true;
  }
}

function toGenerateRequest(params: GenerateParams): GenerateRequest {
  return {
    key: params.key,
    prompt: params.prompt,
    negative_prompt: params.negativePrompt,
    width: params.width,
    height: params.height,
    steps: params.steps,
    guidance_scale: params.guidanceScale,
    seed: params.seed,
    superres: params.superres,
    scheduler: params.sampler === DEFAULT_SAMPLER ? '' : params.sampler,
    // The model host counts in diffusers' convention: layers skipped, 0 = none.
    clip_skip: Math.max(0, params.clipSkip - 1),
  };
}

function toGeneratedImage(image: GeneratedImage__Output): GeneratedImage {
  const { png, seed, width, height, superres_applied } = image;
  return { png, seed, width, height, superresApplied: superres_applied };
}

function loadRequestOf(mode: ResolvedMode) {
  return {
    key: mode.key,
    model_path: mode.modelPath,
    config_dir: mode.configDir ?? '',
    loras: mode.loras.map((lora) => ({
      path: lora.absolutePath,
      strength: lora.strength,
      adapter_name: lora.adapterName,
    })),
    superres_model: mode.superres?.modelPath ?? '',
    superres_scale: mode.superres?.scale ?? 0,
    prediction_type: mode.predictionType ?? '',
    vae_path: mode.vaePath ?? '',
    pinned: mode.pinned,
  };
}

function toLoadResult(reply: LoadModelReply__Output): LoadResult {
  return {
    key: reply.key,
    architecture: reply.architecture,
    bytes: reply.bytes,
    estimatedBytes: reply.estimated_bytes,
    loadSeconds: reply.load_seconds,
    source: LOAD_SOURCES[reply.source] ?? 'unknown',
    evicted: reply.evicted,
    evictedToRam: reply.evicted_to_ram,
    evictedOnOom: reply.evicted_on_oom,
    device: reply.device,
    prefetched: reply.prefetched,
  };
}

function toMemoryStats(reply: MemoryStats__Output): MemoryStats {
  return {
    device: reply.device,
    deviceName: reply.device_name,
    totalBytes: reply.total_bytes,
    usedBytes: reply.used_bytes,
    availableBytes: reply.available_bytes,
    models: reply.models.map((model): ResidentModel => ({
      key: model.key,
      modelPath: model.model_path,
      bytes: model.bytes,
      loras: model.loras.map((lora) => ({
        path: lora.path,
        strength: lora.strength,
        adapterName: lora.adapter_name,
      })),
      tier: model.tier === 'ram' ? 'ram' : 'device',
      lastUsedUnixMs: model.last_used_unix_ms,
      architecture: model.architecture,
      inRamTier: model.in_ram_tier,
      baseKey: model.base_key,
      stale: model.stale,
    })),
    reserveBytes: reply.reserve_bytes,
    ramTierBytes: reply.ram_tier_bytes,
    ramTierCapacityBytes: reply.ram_tier_capacity_bytes,
  };
}

/**
 * Adds MODEL_HOST_TOKEN to every call's metadata. Call credentials would do it too, but grpc-js only combines those
 * with a TLS channel, and the model host is reached over a unix socket or a private network.
 */
function withToken(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
