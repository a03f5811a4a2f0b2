import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';

import { loadConfig } from '../config/app-config.js';
import {
  JobCancelledError,
  ModelFileMissingError,
  ModelNotLoadedError,
  OutOfMemoryError,
  InvalidRequestError,
  ModelHostError,
  ModelHostUnavailableError,
  TaskFailedError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { parseModesConfig } from '../modes/modes-config.loader.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import type { HealthCheckRequest__Output } from './generated/grpc/health/v1/HealthCheckRequest.js';
import type { HealthCheckResponse } from './generated/grpc/health/v1/HealthCheckResponse.js';
import type { GenerateBatchEvent } from './generated/modelhost/v1/GenerateBatchEvent.js';
import type { GenerateBatchRequest__Output } from './generated/modelhost/v1/GenerateBatchRequest.js';
import type { GenerateEvent } from './generated/modelhost/v1/GenerateEvent.js';
import type { GenerateRequest__Output } from './generated/modelhost/v1/GenerateRequest.js';
import type { LoadModelReply } from './generated/modelhost/v1/LoadModelReply.js';
import type { LoadModelRequest__Output } from './generated/modelhost/v1/LoadModelRequest.js';
import type { MemoryStats } from './generated/modelhost/v1/MemoryStats.js';
import type { ModelHostHandlers } from './generated/modelhost/v1/ModelHost.js';
import type { RunTaskRequest__Output } from './generated/modelhost/v1/RunTaskRequest.js';
import { loadModelHostProto } from './proto-package.loader.js';
import { ModelHostClient } from './model-host.client.js';
import type { GenerateParams, GenerateProgress, GeneratedImage } from './model-host.types.js';
import { waitFor } from '../../testing/wait-for.js';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

/** A stand-in model host on a unix socket, served from the same .proto files with grpc-js. */
class FakeModelHost {
  readonly server = new grpc.Server();
  readonly loads: LoadModelRequest__Output[] = [];
  readonly generations: GenerateRequest__Output[] = [];
  readonly tasks: RunTaskRequest__Output[] = [];
  serving = true;
  generationCancelled = false;
  /** When set, Generate sends one progress event and then waits for the client to cancel. */
  hang = false;
  /** GenerateBatch: each call's members, the member cancels it got, and whether a call was cut short. */
  readonly batches: GenerateRequest__Output[][] = [];
  readonly memberCancels: number[] = [];
  batchCancelled = false;

  constructor() {
    const proto = loadModelHostProto();
    // Only the calls the repository makes; grpc-js answers UNIMPLEMENTED for the rest.
    const handlers: Pick<
      ModelHostHandlers,
      'LoadModel' | 'UnloadModel' | 'Generate' | 'GenerateBatch' | 'GetMemory' | 'RunTask' | 'SetModelRoots'
    > = {
      // Per member: one progress event, then by prompt: 'hang' waits for its cancel, 'missing' fails alone,
      // 'break' fails the whole call; any other gets its image. The call ends once every member has its outcome.
      GenerateBatch: (call) => {
        const open = new Set<number>();
        const finish = (member: number, event: Omit<GenerateBatchEvent, 'member'>): void => {
          if (!open.delete(member)) return;
          call.write({ member, ...event });
          if (open.size === 0) call.end();
        };
        // grpc-js also says 'cancelled' for a call that has ended: only one cut short counts.
        call.on('cancelled', () => (this.batchCancelled ||= open.size > 0));
        call.on('data', (request: GenerateBatchRequest__Output) => {
          if (request.request === 'cancel_member') {
            this.memberCancels.push(request.cancel_member ?? -1);
            finish(request.cancel_member ?? -1, { cancelled: {} });
            return;
          }
          const members = request.batch?.members ?? [];
          this.batches.push(members);
          if (members.some((m) => m.prompt === 'break')) {
            call.emit('error', {
              code: grpc.status.INVALID_ARGUMENT,
              details: 'width and height must be multiples of 8',
            });
            return;
          }
          members.forEach((_, i) => open.add(i));
          members.forEach((m, i) => {
            call.write({ member: i, progress: { step: 1, total_steps: 1, elapsed_seconds: i / 10 } });
            if (m.prompt === 'missing') {
              finish(i, { error: { code: 'FAILED_PRECONDITION', message: `model '${m.key}' is not loaded` } });
            } else if (m.prompt !== 'hang') {
              const image = { png: PNG, seed: m.seed, width: m.width, height: m.height, superres_applied: false };
              finish(i, { image });
            }
          });
        });
      },
      // Like the model host: resolves (here: drops duplicates), refuses relative roots.
      SetModelRoots: (call, callback) => {
        const { roots } = call.request;
        if (roots.some((root) => !root.startsWith('/'))) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `roots: must be absolute paths, got '${roots[0]}'` });
        } else callback(null, { roots: [...new Set(roots)] });
      },
      // Like the model host's task registry: echo, a task that refuses, a bad argument, an unknown name.
      RunTask: (call, callback) => {
        this.tasks.push(call.request);
        const { name, args_json } = call.request;
        if (name === 'echo') callback(null, { result_json: args_json || '{}' });
        else if (name === 'refuse') callback({ code: grpc.status.FAILED_PRECONDITION, details: 'no model is loaded' });
        else if (name === 'picky') callback({ code: grpc.status.INVALID_ARGUMENT, details: 'prefix is required' });
        else if (name === 'garbled') callback(null, { result_json: '{nope' });
        else callback({ code: grpc.status.NOT_FOUND, details: `unknown task '${name}' (registered: echo)` });
      },
      LoadModel: (call, callback) => {
        this.loads.push(call.request);
        if (call.request.model_path.includes('missing')) {
          callback({ code: grpc.status.NOT_FOUND, details: `model file not found: ${call.request.model_path}` });
        } else if (call.request.model_path.includes('huge')) {
          callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'CUDA out of memory' });
        } else {
          const reply: LoadModelReply = {
            key: call.request.key,
            architecture: 'sd15',
            bytes: 2 ** 32 + 5,
            estimated_bytes: 3000,
            load_seconds: 1.5,
            source: 'LOAD_SOURCE_DISK',
            evicted: ['old-key', 'parked-key'],
            evicted_to_ram: ['parked-key'],
            evicted_on_oom: ['old-key'],
            device: 'cpu',
          };
          callback(null, reply);
        }
      },
      UnloadModel: (call, callback) => callback(null, { key: call.request.key, freed_bytes: 1234 }),
      GetMemory: (_call, callback) => {
        const stats: MemoryStats = {
          device: 'cpu',
          device_name: 'Test CPU',
          total_bytes: 8000,
          used_bytes: 3000,
          available_bytes: 5000,
          models: [
            {
              key: 'k',
              model_path: '/models/a.safetensors',
              bytes: 3000,
              loras: [{ path: '/loras/x.safetensors', strength: 0.5, adapter_name: 'x' }],
              tier: 'device',
              last_used_unix_ms: 1_700_000_000_000,
              architecture: 'sd15',
              in_ram_tier: false,
              base_key: 'k',
              stale: true,
            },
          ],
          reserve_bytes: 100,
          ram_tier_bytes: 0,
          ram_tier_capacity_bytes: 4000,
        };
        callback(null, stats);
      },
      Generate: (call) => {
        this.generations.push(call.request);
        call.on('cancelled', () => (this.generationCancelled = true));
        const progress = (step: number): GenerateEvent => ({
          progress: { step, total_steps: 2, elapsed_seconds: step / 10 },
        });
        call.write(progress(1));
        if (this.hang) return;
        if (call.request.prompt === 'fail') {
          call.emit('error', { code: grpc.status.INTERNAL, details: 'boom' });
          return;
        }
        call.write(progress(2));
        if (call.request.prompt !== 'no image') {
          call.write({
            image: {
              png: PNG,
              seed: call.request.seed,
              width: call.request.width,
              height: call.request.height,
              superres_applied: call.request.superres,
            },
          });
        }
        call.end();
      },
    };
    this.server.addService(proto.modelhost.v1.ModelHost.service, handlers);
    this.server.addService(proto.grpc.health.v1.Health.service, {
      Check: (
        call: grpc.ServerUnaryCall<HealthCheckRequest__Output, HealthCheckResponse>,
        callback: grpc.sendUnaryData<HealthCheckResponse>,
      ) => {
        if (call.request.service !== 'modelhost.v1.ModelHost') {
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        } else {
          callback(null, { status: this.serving ? 'SERVING' : 'NOT_SERVING' });
        }
      },
    });
  }

  listen(address: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

const MODE: ResolvedMode = (() => {
  const config = parseModesConfig(
    'model_root: /models\nlora_root: /loras\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n    config: cfg\n' +
      '    loras:\n      - x.safetensors\n      - {path: y.safetensors, strength: 0.5, adapter_name: why}\n' +
      '    superres: {model: up/4x.safetensors}\n    prediction_type: v_prediction\n    vae: vae/fix.safetensors\n' +
      '    pinned: true\n',
    { source: 'test', baseDir: '/', allowPickle: false },
  );
  const mode = config.modes.get('m');
  if (!mode) throw new Error('no mode');
  return mode;
})();

const PARAMS: GenerateParams = {
  key: MODE.key,
  prompt: 'a cat',
  negativePrompt: 'blurry',
  width: 64,
  height: 96,
  steps: 2,
  guidanceScale: 7.5,
  seed: 2 ** 40 + 1,
  superres: false,
  sampler: 'euler_a',
  clipSkip: 2,
};

function repositoryFor(address: string, env: Record<string, string> = {}): ModelHostClient {
  return new ModelHostClient({ address, socketDir: undefined }, loadConfig({ SIDECAR_ADDR: address, ...env }));
}

describe('ModelHostClient against a gRPC server', () => {
  let dir: string;
  let address: string;
  let modelHost: FakeModelHost;
  let repository: ModelHostClient;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'repo-spec-'));
    address = `unix:${join(dir, 'modelhost.sock')}`;
    modelHost = new FakeModelHost();
    await modelHost.listen(address);
    repository = repositoryFor(address);
  });

  afterEach(() => {
    repository.close();
    modelHost.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a fully explicit load request and returns the reply in domain terms', async () => {
    const result = await repository.load(MODE);
    expect(modelHost.loads).toEqual([
      {
        key: MODE.key,
        model_path: '/models/a.safetensors',
        config_dir: '/models/cfg',
        loras: [
          { path: '/loras/x.safetensors', strength: 1, adapter_name: 'x' },
          { path: '/loras/y.safetensors', strength: 0.5, adapter_name: 'why' },
        ],
        dtype: '',
        superres_model: '/models/up/4x.safetensors',
        superres_scale: 0,
        prediction_type: 'v_prediction',
        vae_path: '/models/vae/fix.safetensors',
        pinned: true,
      },
    ]);
    expect(result).toEqual({
      key: MODE.key,
      architecture: 'sd15',
      bytes: 2 ** 32 + 5,
      estimatedBytes: 3000,
      loadSeconds: 1.5,
      source: 'disk',
      evicted: ['old-key', 'parked-key'],
      evictedToRam: ['parked-key'],
      evictedOnOom: ['old-key'],
      device: 'cpu',
      prefetched: false,
    });
  });

  it("turns the model host's NOT_FOUND on load into ModelFileMissingError naming the file", async () => {
    const mode = { ...MODE, modelPath: '/models/missing.safetensors' };
    const failure = await repository.load(mode).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ModelFileMissingError);
    expect(failure).toMatchObject({ path: '/models/missing.safetensors' });
  });

  it('turns RESOURCE_EXHAUSTED into OutOfMemoryError', async () => {
    await expect(repository.load({ ...MODE, modelPath: '/models/huge.safetensors' })).rejects.toBeInstanceOf(
      OutOfMemoryError,
    );
  });

  it('unloads and reads memory figures', async () => {
    await expect(repository.unload('k')).resolves.toBe(1234);
    await expect(repository.getMemory()).resolves.toEqual({
      device: 'cpu',
      deviceName: 'Test CPU',
      totalBytes: 8000,
      usedBytes: 3000,
      availableBytes: 5000,
      models: [
        {
          key: 'k',
          modelPath: '/models/a.safetensors',
          bytes: 3000,
          loras: [{ path: '/loras/x.safetensors', strength: 0.5, adapterName: 'x' }],
          tier: 'device',
          lastUsedUnixMs: 1_700_000_000_000,
          architecture: 'sd15',
          inRamTier: false,
          baseKey: 'k',
          stale: true,
        },
      ],
      reserveBytes: 100,
      ramTierBytes: 0,
      ramTierCapacityBytes: 4000,
    });
  });

  it('streams a generation: progress events, then the image', async () => {
    const progress: GenerateProgress[] = [];
    const image = await repository.generate(PARAMS, { onProgress: (p) => progress.push(p) });
    expect(modelHost.generations).toEqual([
      {
        key: MODE.key,
        prompt: 'a cat',
        negative_prompt: 'blurry',
        width: 64,
        height: 96,
        steps: 2,
        guidance_scale: 7.5,
        seed: 2 ** 40 + 1,
        superres: false,
        scheduler: 'euler_a',
        // A1111's "Clip skip: 2" is diffusers' clip_skip 1: one layer skipped.
        clip_skip: 1,
      },
    ]);
    expect(progress).toEqual([
      { step: 1, totalSteps: 2, elapsedSeconds: 0.1 },
      { step: 2, totalSteps: 2, elapsedSeconds: 0.2 },
    ]);
    expect(image).toEqual({ png: PNG, seed: 2 ** 40 + 1, width: 64, height: 96, superresApplied: false });
    const upscaled = await repository.generate({ ...PARAMS, superres: true });
    expect(modelHost.generations[1]?.superres).toBe(true);
    expect(upscaled.superresApplied).toBe(true);
  });

  it("asks for the model's own scheduler and no clip skip as empty and 0", async () => {
    await repository.generate({ ...PARAMS, sampler: 'default', clipSkip: 1 });
    await repository.generate({ ...PARAMS, sampler: 'default', clipSkip: 0 });
    expect(modelHost.generations.map((g) => [g.scheduler, g.clip_skip])).toEqual([
      ['', 0],
      ['', 0],
    ]);
  });

  it('cancels the call when the signal aborts', async () => {
    modelHost.hang = true;
    const abort = new AbortController();
    const generation = repository.generate(PARAMS, { signal: abort.signal, onProgress: () => abort.abort() });
    await expect(generation).rejects.toBeInstanceOf(JobCancelledError);
    await waitFor(() => modelHost.generationCancelled, { what: 'the fake model host to see the cancel' });
  });

  it('does not call the model host for an already aborted signal', async () => {
    const abort = new AbortController();
    abort.abort();
    await expect(repository.generate(PARAMS, { signal: abort.signal })).rejects.toBeInstanceOf(JobCancelledError);
    expect(modelHost.generations).toEqual([]);
  });

  it('reports a stream that fails, or that ends without an image', async () => {
    await expect(repository.generate({ ...PARAMS, prompt: 'fail' })).rejects.toBeInstanceOf(ModelHostError);
    await expect(repository.generate({ ...PARAMS, prompt: 'no image' })).rejects.toThrow(
      'Model host error: the generation stream ended without an image',
    );
  });

  it('times a generation out after GENERATE_TIMEOUT_MS', async () => {
    modelHost.hang = true;
    const impatient = repositoryFor(address, { GENERATE_TIMEOUT_MS: '200' });
    await expect(impatient.generate(PARAMS)).rejects.toThrow('Generation timed out after 200 ms');
    impatient.close();
  });

  it('runs a batch as one call: each member gets its own progress and image, or its own error', async () => {
    const progress: GenerateProgress[][] = [[], [], []];
    const members = [
      { ...PARAMS, prompt: 'a cat', seed: 1 },
      { ...PARAMS, prompt: 'missing', seed: 2 },
      { ...PARAMS, prompt: 'a dog', seed: 3 },
    ].map((params, i) => ({ params, options: { onProgress: (p: GenerateProgress) => progress[i]?.push(p) } }));
    const [cat, missing, dog] = await Promise.allSettled(repository.generateBatch(members));
    const image = (seed: number): GeneratedImage => ({ png: PNG, seed, width: 64, height: 96, superresApplied: false });
    expect(cat).toEqual({ status: 'fulfilled', value: image(1) });
    expect(dog).toEqual({ status: 'fulfilled', value: image(3) });
    expect(missing).toEqual({
      status: 'rejected',
      reason: new ModelNotLoadedError(`model '${MODE.key}' is not loaded`),
    });
    expect(missing?.status === 'rejected' && missing.reason).toBeInstanceOf(ModelNotLoadedError);
    expect(modelHost.batchCancelled).toBe(false);
    expect(modelHost.batches).toHaveLength(1);
    expect(modelHost.batches[0]?.map((m) => [m.prompt, m.seed, m.scheduler, m.clip_skip])).toEqual([
      ['a cat', 1, 'euler_a', 1],
      ['missing', 2, 'euler_a', 1],
      ['a dog', 3, 'euler_a', 1],
    ]);
    expect(progress).toEqual([0, 1, 2].map((i) => [{ step: 1, totalSteps: 1, elapsedSeconds: i / 10 }]));
  });

  it('cancels one member at once and tells the model host, while the others complete', async () => {
    const abort = new AbortController();
    const [cancelled, other] = repository.generateBatch([
      { params: { ...PARAMS, prompt: 'hang' }, options: { signal: abort.signal, onProgress: () => abort.abort() } },
      { params: { ...PARAMS, prompt: 'a cat' } },
    ]);
    await expect(cancelled).rejects.toBeInstanceOf(JobCancelledError);
    await expect(other).resolves.toMatchObject({ png: PNG });
    await waitFor(() => modelHost.memberCancels.length > 0, { what: 'the member cancel to arrive' });
    expect(modelHost.memberCancels).toEqual([0]);
    expect(modelHost.batchCancelled).toBe(false);
  });

  it('cancels the call once every member is cancelled, and sends none already aborted', async () => {
    const aborted = new AbortController();
    aborted.abort();
    const abort = new AbortController();
    const [before, during] = repository.generateBatch([
      { params: { ...PARAMS, prompt: 'a cat' }, options: { signal: aborted.signal } },
      { params: { ...PARAMS, prompt: 'hang' }, options: { signal: abort.signal, onProgress: () => abort.abort() } },
    ]);
    await expect(before).rejects.toThrow('generation cancelled before it started');
    await expect(during).rejects.toBeInstanceOf(JobCancelledError);
    await waitFor(() => modelHost.batchCancelled, { what: 'the fake model host to see the call cancelled' });
    expect(modelHost.batches.map((members) => members.map((m) => m.prompt))).toEqual([['hang']]);
    expect(modelHost.memberCancels).toEqual([]);

    const none = repository.generateBatch([{ params: PARAMS, options: { signal: aborted.signal } }]);
    await expect(none[0]).rejects.toBeInstanceOf(JobCancelledError);
    expect(modelHost.batches).toHaveLength(1);
  });

  it("fails every member with the call's own error", async () => {
    const results = await Promise.allSettled(
      repository.generateBatch([{ params: PARAMS }, { params: { ...PARAMS, prompt: 'break' } }]),
    );
    const reason = new InvalidRequestError(['width and height must be multiples of 8']);
    expect(results).toEqual([
      { status: 'rejected', reason },
      { status: 'rejected', reason },
    ]);
  });

  it('runs a named model host task with JSON arguments and parses its JSON result', async () => {
    await expect(repository.runTask('echo', { n: 2, list: ['a'] })).resolves.toEqual({ n: 2, list: ['a'] });
    await expect(repository.runTask('echo')).resolves.toEqual({});
    expect(modelHost.tasks).toEqual([
      { name: 'echo', args_json: '{"n":2,"list":["a"]}' },
      { name: 'echo', args_json: '{}' },
    ]);
  });

  it("turns a task's failures into domain errors", async () => {
    await expect(repository.runTask('nope')).rejects.toThrow(
      new UnknownTaskError("unknown task 'nope' (registered: echo)"),
    );
    await expect(repository.runTask('refuse')).rejects.toThrow(new TaskFailedError('no model is loaded'));
    await expect(repository.runTask('picky')).rejects.toThrow(new InvalidRequestError(['prefix is required']));
    await expect(repository.runTask('garbled')).rejects.toThrow(
      new ModelHostError("task 'garbled' answered something that is not JSON"),
    );
  });

  it('sets the model roots and answers them as the model host resolved them, or its refusal', async () => {
    await expect(repository.setModelRoots(['/models', '/loras', '/models'])).resolves.toEqual(['/models', '/loras']);
    await expect(repository.setModelRoots(['models'])).rejects.toThrow(
      new InvalidRequestError(["roots: must be absolute paths, got 'models'"]),
    );
  });

  it('knows whether the model host serves, and waits for it', async () => {
    await expect(repository.isServing()).resolves.toBe(true);
    modelHost.serving = false;
    await expect(repository.isServing()).resolves.toBe(false);
    await expect(repository.waitForReady(300)).rejects.toThrow(
      new ModelHostUnavailableError('the model host was not serving after 300 ms'),
    );
    setTimeout(() => (modelHost.serving = true), 300);
    await expect(repository.waitForReady(5_000)).resolves.toBeUndefined();
  });
});

describe('ModelHostClient without a model host', () => {
  it('fails fast with ModelHostUnavailableError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'repo-spec-'));
    const repository = repositoryFor(`unix:${join(dir, 'nobody.sock')}`);
    try {
      await expect(repository.getMemory()).rejects.toBeInstanceOf(ModelHostUnavailableError);
      await expect(repository.load(MODE)).rejects.toBeInstanceOf(ModelHostUnavailableError);
      await expect(repository.isServing()).resolves.toBe(false);
    } finally {
      repository.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
