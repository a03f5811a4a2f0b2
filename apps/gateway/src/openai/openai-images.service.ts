import { randomInt } from 'node:crypto';

import { Injectable } from '@nestjs/common';

import { InvalidRequestError } from '../errors/domain.errors.js';
import type { GenerateRequestDto } from '../generation/dto/generate-request.dto.js';
import { GenerationService } from '../generation/generation.service.js';
import { ModesService } from '../modes/modes.service.js';
import type { JobHandle } from '../queue/job.types.js';
import type { GeneratedImage } from '../model-host/model-host.types.js';
import { AUTO_SIZE, type ImageGenerationRequestDto } from './dto/image-generation-request.dto.js';
import type { ImageDataDto, ImagesResponseDto } from './dto/images-response.dto.js';

/** Random seeds, as POST /generate picks them: what every diffusers generator takes. */
const SEED_LIMIT = 2 ** 32;

/**
 * POST /v1/images/generations over the job engine: `n` generation jobs, submitted as POST /api/jobs submits one, so
 * each is a job of its own (GET /api/jobs lists them, the scheduler orders them with the rest).
 */
@Injectable()
export class OpenAiImagesService {
  constructor(
    private readonly modes: ModesService,
    private readonly generation: GenerationService,
  ) {}

  /**
   * Queues the request's n images and waits for all of them. `imageUrl` turns a job id into the URL answered for
   * response_format `url`. Aborting `signal` (the client went away) cancels the jobs not finished yet; so does a
   * failure of any of them (the request fails as a whole, and the rest would be wasted work).
   */
  async generate(
    request: ImageGenerationRequestDto,
    imageUrl: (jobId: string) => string,
    signal?: AbortSignal,
    owner?: string,
  ): Promise<ImagesResponseDto> {
    const seeds = this.seeds(request.n ?? 1, request.seed ?? undefined);
    const template = this.toGenerateRequest(request);
    const handles: JobHandle<GeneratedImage>[] = [];
    const cancelAll = (): void => handles.forEach((handle) => handle.cancel());
    try {
      // All or none: a full queue at the k-th image drops the k - 1 already queued.
      for (const seed of seeds) handles.push(await this.generation.submit({ ...template, seed }, 'steps', owner));
    } catch (error) {
      cancelAll();
      throw error;
    }
    signal?.addEventListener('abort', cancelAll, { once: true });
    if (signal?.aborted) cancelAll();
    try {
      const images = await Promise.all(
        handles.map((handle) =>
          handle.result().catch((error: unknown) => {
            cancelAll();
            throw error;
          }),
        ),
      );
      const url = request.response_format === 'url';
      const data = images.map((image, i): ImageDataDto => ({
        ...(url ? { url: imageUrl(handles[i].id) } : { b64_json: image.png.toString('base64') }),
        seed: seeds[i],
      }));
      return { created: Math.floor(Date.now() / 1000), data };
    } finally {
      signal?.removeEventListener('abort', cancelAll);
    }
  }

  /** Our generation request for the OpenAI one: the same checks and mode defaults as POST /generate. */
  private toGenerateRequest(request: ImageGenerationRequestDto): GenerateRequestDto {
    // OpenAI's model defaults to the default mode (POST /generate's mode defaults to the one the queue leaves).
    const mode = this.modes.getMode(request.model ?? this.modes.config.defaultMode).name;
    return {
      prompt: request.prompt,
      mode,
      ...(request.negative_prompt != null && { negative_prompt: request.negative_prompt }),
      ...(request.size != null && request.size !== AUTO_SIZE && { size: request.size }),
      ...(request.steps != null && { num_inference_steps: request.steps }),
      ...(request.guidance_scale != null && { guidance_scale: request.guidance_scale }),
    };
  }

  /** `seed`, `seed + 1`, ... when a seed is given; else n distinct random ones. */
  private seeds(n: number, first: number | undefined): number[] {
    if (first !== undefined) {
      // Compared on the limit's side: first + n - 1 would round back down to the limit past 2^53.
      if (first > Number.MAX_SAFE_INTEGER - (n - 1)) {
        throw new InvalidRequestError([
          `seed: must be at most ${Number.MAX_SAFE_INTEGER - n + 1} when n is ${n} (image i gets seed + i)`,
        ]);
      }
      return Array.from({ length: n }, (_, i) => first + i);
    }
    const seeds = new Set<number>();
    while (seeds.size < n) seeds.add(randomInt(SEED_LIMIT));
    return [...seeds];
  }
}
