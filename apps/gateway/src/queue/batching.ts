import type { GenerationPayload, JobPayload } from './queue-backend.js';
import type { SchedulableJob } from './scheduler.js';

/**
 * What generations must share to run as one pipeline call on the model host: the mode and every setting but the
 * prompt, negative prompt and seed. Whether a negative prompt is given counts too, since without one SDXL
 * conditions on zeros rather than on an empty prompt (the model host groups the same way; docs/SCHEDULING.md, "Batching").
 */
function batchKey(job: GenerationPayload): string {
  const { width, height, steps, guidanceScale, superres, sampler, negativePrompt } = job.params;
  return JSON.stringify([job.mode, width, height, steps, guidanceScale, superres, sampler, negativePrompt !== '']);
}

/**
 * The waiting jobs to run with `first` in one call: the generations compatible with it that the scheduler would
 * run right after it anyway, in that order, up to `maxBatch` in all. `plan` is the scheduler's order of the
 * waiting jobs once `first` has run; the first job of it that cannot join (another kind, mode or setting) ends
 * the batch, so no job passes one it would not have passed, and the scheduler's delay bound holds.
 */
export function batchPartners(
  first: JobPayload,
  plan: readonly SchedulableJob[],
  jobOf: (id: string) => JobPayload | undefined,
  maxBatch: number,
): string[] {
  if (first.kind !== 'generation' || maxBatch <= 1) return [];
  const key = batchKey(first);
  const partners: string[] = [];
  for (const waiting of plan) {
    if (partners.length >= maxBatch - 1) break;
    const job = jobOf(waiting.id);
    if (job?.kind !== 'generation' || batchKey(job) !== key) break;
    partners.push(waiting.id);
  }
  return partners;
}
