import { Controller, Get, HttpCode, Post } from '@nestjs/common';

import { Admin } from '../auth/access.decorator.js';
import { formatImageSize } from '../common/image-size.js';
import type { PredictionType, SamplerName } from '../common/samplers.js';
import type { ResolvedMode } from './mode.types.js';
import { ModesService } from './modes.service.js';

export interface ModeView {
  model: string;
  loras: { path: string; strength: number; adapter_name: string }[];
  default_size: string;
  default_steps: number;
  default_guidance: number;
  metadata?: Readonly<Record<string, unknown>>;
  /** The sampler a request without `scheduler` gets; `default`: the checkpoint's own. */
  scheduler: SamplerName;
  clip_skip?: number;
  prediction_type?: PredictionType;
  vae?: string;
  /** The upscaler a request's `superres` applies, and its scale (absent: the upscaler's own). */
  superres?: { model: string; scale?: number };
  /** The diffusers config folder the checkpoint is read with, as written. */
  config?: string;
}

export interface ModesView {
  default_mode: string;
  modes: Record<string, ModeView>;
}

export interface ReloadView {
  status: 'reloaded';
  modes_count: number;
  modes: string[];
  default_mode: string;
  /** Ours: what the new file names that will not work as it stands (a model file not on disk); [] when none. */
  warnings: { path: string; message: string }[];
}

@Controller('api/modes')
export class ModesController {
  constructor(private readonly modes: ModesService) {}

  @Get()
  list(): ModesView {
    const { defaultMode, modes } = this.modes.config;
    return {
      default_mode: defaultMode,
      modes: Object.fromEntries([...modes.values()].map((mode) => [mode.name, toView(mode)])),
    };
  }

  /** 400 with every problem when the file is invalid (the running modes stay); 409 on the legacy setup. */
  @Post('reload')
  @Admin()
  @HttpCode(200)
  reload(): ReloadView {
    const { defaultMode, modes } = this.modes.reload('api');
    return {
      status: 'reloaded',
      modes_count: modes.size,
      modes: [...modes.keys()],
      default_mode: defaultMode,
      warnings: this.modes.reloadWarnings.map(({ path, message }) => ({ path, message })),
    };
  }
}

/** As the spec shows it: paths as written in modes.yaml, LoRAs in their full form. */
function toView(mode: ResolvedMode): ModeView {
  return {
    model: mode.model,
    loras: mode.loras.map((lora) => ({ path: lora.path, strength: lora.strength, adapter_name: lora.adapterName })),
    default_size: formatImageSize(mode.defaultSize),
    default_steps: mode.defaultSteps,
    default_guidance: mode.defaultGuidance,
    ...(mode.metadata && { metadata: mode.metadata }),
    // Ours, after the spec's keys.
    scheduler: mode.sampler,
    ...(mode.clipSkip !== undefined && { clip_skip: mode.clipSkip }),
    ...(mode.predictionType && { prediction_type: mode.predictionType }),
    ...(mode.vae && { vae: mode.vae }),
    ...(mode.superres && {
      superres: {
        model: mode.superres.model,
        ...(mode.superres.scale !== undefined && { scale: mode.superres.scale }),
      },
    }),
    ...(mode.config !== undefined && { config: mode.config }),
  };
}
