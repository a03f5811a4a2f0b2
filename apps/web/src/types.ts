/** The server's JSON, as the page reads it (README "Endpoints", GET /api/events). */

export interface ModeView {
  model: string;
  loras: { path: string; strength: number; adapter_name: string }[];
  default_size: string;
  default_steps: number;
  default_guidance: number;
  metadata?: Record<string, unknown>;
  scheduler: string;
  clip_skip?: number;
  prediction_type?: string;
  vae?: string;
  superres?: { model: string; scale?: number };
  config?: string;
}

export interface ModesView {
  default_mode: string;
  modes: Record<string, ModeView>;
}

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface Job {
  id: string;
  kind: 'generation' | 'mode-switch' | 'custom';
  mode: string | null;
  state: JobState;
  position: number | null;
  progress: { step: number; total_steps: number } | null;
  seed: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  switch_ms: number | null;
  generate_ms: number | null;
  switch: { from_mode: string | null; to_mode: string; source: string } | null;
  error: { error: string; message: string } | null;
  host: string | null;
}

export interface ResidentModel {
  key: string;
  mode: string;
  bytes: number;
  tier: 'device' | 'ram';
}

/** One model host's memory, in the `memory` event's form. */
export interface HostMemory {
  total_bytes: number;
  used_bytes: number;
  models: ResidentModel[];
}

export interface VramModel {
  name: string;
  key: string;
  bytes: number;
  stale: boolean;
  architecture?: string;
}

export interface HostStatus {
  id: string;
  device: string;
  state: string;
  vram: { device: string; total_gb: number; used_gb: number; models: VramModel[] } | null;
  current_mode: string | null;
  queue_size: number;
}

export interface MemoryPolicy {
  mode: string;
  keep_alive: number;
  pinned: boolean;
  resident: 'device' | 'ram' | null;
  expires_at: string | null;
}

export interface Status {
  current_mode: string | null;
  queue_size: number;
  hosts: HostStatus[];
  last_reload_error: unknown;
  last_switch_error: unknown;
  memory_policy: MemoryPolicy[];
}

export interface ModelFile {
  path: string;
  root: string;
  kind: string;
  architecture: string;
  bytes: number;
  used_by: string[];
  resident: boolean;
  location: string | null;
  stale: boolean;
  reason?: string;
}

export interface ConfigProblem {
  path: string | null;
  message: string;
}

export interface Rejection {
  source: string;
  problems: ConfigProblem[];
}

/** What the page asked for, kept beside its job to show with the image and to copy as curl. */
export interface GenerateRequest {
  prompt: string;
  mode: string;
  negative_prompt?: string;
  size: string;
  num_inference_steps: number;
  guidance_scale: number;
  scheduler?: string;
  seed?: number;
  superres?: boolean;
}

/** A job as the page holds it: the record from the server, and the switch its turn announced while running. */
export type PageJob = Job & { switching?: { from_mode: string | null; to_mode: string } };
