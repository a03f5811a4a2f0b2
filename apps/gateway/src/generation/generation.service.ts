import { randomInt } from 'node:crypto';

import { Injectable } from '@nestjs/common';

import { parseImageSize } from '../common/image-size.js';
import { LCM_MAX_STEPS } from '../common/samplers.js';
import { InvalidRequestError } from '../errors/domain.errors.js';
import { ModelFilesProbe } from '../modes/model-files.probe.js';
import type { ResolvedMode } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import { GenerationJob, type GenerationParams, type JobHandle } from '../queue/job.types.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import type { GenerateRequestDto } from './dto/generate-request.dto.js';

export interface GenerationResult {
  readonly mode: string;
  readonly seed: number;
  readonly image: GeneratedImage;
}

/** Seeds the gateway picks when the request gives none: 0 .. 2^32 - 1, what every diffusers generator takes. */
const SEED_LIMIT = 2 ** 32;

@Injectable()
export class GenerationService {
  constructor(
    private readonly modes: ModesService,
    private readonly pool: WorkerPool,
    private readonly files: ModelFilesProbe,
  ) {}

  /** Queues one generation; aborting `signal` (the client went away) cancels it, queued or running. */
  async generate(request: GenerateRequestDto, signal?: AbortSignal, owner?: string): Promise<GenerationResult> {
    const job = await this.toJob(request, undefined, owner);
    const handle = await this.pool.enqueue(job);
    const cancel = (): void => handle.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    try {
      return { mode: job.mode, seed: job.params.seed, image: await handle.result() };
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /**
   * Queues one generation that runs whether or not anybody waits for it: POST /api/jobs. `stepsField`: what the
   * caller's API calls num_inference_steps, for its error messages (`steps` under /v1).
   */
  async submit(
    request: GenerateRequestDto,
    stepsField = 'num_inference_steps',
    owner?: string,
  ): Promise<JobHandle<GeneratedImage>> {
    return this.pool.enqueue(await this.toJob(request, stepsField, owner));
  }

  /** The request with the mode's defaults applied and the seed chosen; 4xx errors for what cannot run. */
  private async toJob(
    request: GenerateRequestDto,
    stepsField = 'num_inference_steps',
    owner?: string,
  ): Promise<GenerationJob> {
    const mode = request.mode === undefined ? await this.modeForUnnamed() : this.modes.getMode(request.mode);
    if (request.superres && !mode.superres) {
      throw new InvalidRequestError([`superres: mode '${mode.name}' has no superres model`]);
    }
    // Here rather than in the job's turn: a file copied in after the reload works at once, a missing one is a 409
    // naming it before the request waits in the queue.
    this.files.requireFiles(mode);
    const steps = request.num_inference_steps ?? mode.defaultSteps;
    if ((request.scheduler ?? mode.sampler) === 'lcm' && steps > LCM_MAX_STEPS) {
      const field = request.num_inference_steps === undefined ? `modes.${mode.name}.default_steps` : stepsField;
      throw new InvalidRequestError([`${field}: the lcm sampler takes at most ${LCM_MAX_STEPS} steps, got ${steps}`]);
    }
    const size = request.size === undefined ? undefined : parseImageSize(request.size);
    const { width, height } = size?.ok ? size.size : mode.defaultSize;
    const params: GenerationParams = {
      prompt: request.prompt,
      negativePrompt: request.negative_prompt ?? '',
      width,
      height,
      steps,
      guidanceScale: request.guidance_scale ?? mode.defaultGuidance,
      seed: request.seed ?? randomInt(SEED_LIMIT),
      superres: request.superres ?? false,
      ...(request.scheduler !== undefined && { sampler: request.scheduler }),
    };
    return new GenerationJob(mode.name, params, owner);
  }

  /**
   * A request that names no mode runs in the mode the device will hold when its turn comes (what
   * POST /api/modes/switch and earlier requests left), so it never causes a switch; the default mode before any.
   */
  private async modeForUnnamed(): Promise<ResolvedMode> {
    const expected = await this.pool.expectedMode();
    return (expected === undefined ? undefined : this.modes.config.modes.get(expected)) ?? this.modes.defaultMode;
  }
}
