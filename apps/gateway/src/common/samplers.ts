/**
 * Sampler names a mode or a request may give (README: "Samplers"). The model host maps each to a diffusers
 * scheduler built from the model's own scheduler config (sidecar/src/modelhost/engine/schedulers.py keeps the
 * same list). `default` is the scheduler the checkpoint's config names, and is what the gateway sends as empty.
 */
export const SAMPLER_NAMES = [
  'default',
  'euler',
  'euler_a',
  'dpmpp_2m',
  'dpmpp_2m_karras',
  'dpmpp_2m_sde_karras',
  'dpmpp_sde_karras',
  'ddim',
  'pndm',
  'lcm',
  'unipc',
] as const;

export type SamplerName = (typeof SAMPLER_NAMES)[number];

export const DEFAULT_SAMPLER: SamplerName = 'default';

export const SAMPLER_MESSAGE = `must be one of ${SAMPLER_NAMES.join(', ')}`;

/** What the UNet predicts; absent: what the checkpoint's config says. */
export const PREDICTION_TYPES = ['epsilon', 'v_prediction'] as const;

export type PredictionType = (typeof PREDICTION_TYPES)[number];

/**
 * The most denoising steps a request (or a mode's default_steps) may ask for. The API sets no limit of its own;
 * this one keeps one request from holding the device for hours (ComfyUI allows 10000). The lcm sampler has its
 * own, lower limit, which the model host answers with a 400.
 */
export const MAX_INFERENCE_STEPS = 1000;

/**
 * The lcm sampler's own limit: it samples a subset of the schedule it was distilled on (`original_inference_steps`,
 * 50 in every released LCM's scheduler config), and diffusers fails deep in the call past it. The gateway checks it
 * so that the 400 names the request's field; the model host checks the checkpoint's own value again.
 */
export const LCM_MAX_STEPS = 50;

/** A1111/civitai's "Clip skip" (1 = the last layer, 2 = the penultimate), as modes.yaml takes it. */
export const CLIP_SKIP_MAX = 12;
