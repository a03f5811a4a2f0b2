import { basename } from 'node:path';

import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { ModelEvents, type ModelEvent } from '../registry/model.events.js';
import type { ResolvedMode } from './mode.types.js';
import { ModesService } from './modes.service.js';

/**
 * The usual ranges of the families whose released checkpoints are not distilled. The spec's defaults (4 steps,
 * guidance 1.0) suit distilled models (LCM, Turbo, Lightning, Hyper); a full SD1.5 or SDXL checkpoint at those
 * settings gives a blur, with nothing to say why.
 */
const USUAL: Readonly<Record<string, { readonly steps: string; readonly guidance: string }>> = {
  sd15: { steps: '20–30', guidance: '7–7.5' },
  sd2: { steps: '20–30', guidance: '7–9' },
  'sdxl-base': { steps: '25–40', guidance: '5–8' },
};

/**
 * What the file names of distilled models carry. A guess from names: a checkpoint named otherwise that is distilled
 * gets a warning it does not need, which setting its defaults silences.
 */
const DISTILLED_NAME = /lcm|turbo|lightning|hyper|dmd|schnell/i;

/**
 * Why a mode's defaults will likely disappoint on the checkpoint the model host just loaded (its family known only
 * then), or undefined. Distilled: the lcm sampler, or a distilled name on the checkpoint or one of its LoRAs (an
 * LCM-LoRA makes a full checkpoint a 4-step one).
 */
export function defaultsAdvice(mode: ResolvedMode, architecture: string): string | undefined {
  const usual = USUAL[architecture];
  if (!usual || (mode.defaultsSet.steps && mode.defaultsSet.guidance)) return undefined;
  const names = [mode.model, ...mode.loras.map((lora) => lora.path)].map((path) => basename(path));
  if (mode.sampler === 'lcm' || names.some((name) => DISTILLED_NAME.test(name))) return undefined;
  const unset = [!mode.defaultsSet.steps && 'default_steps', !mode.defaultsSet.guidance && 'default_guidance']
    .filter(Boolean)
    .join(' and ');
  return (
    `mode '${mode.name}' (${architecture}, ${mode.model}) sets no ${unset}: requests that give none run at ` +
    `${mode.defaultSteps} steps and guidance ${mode.defaultGuidance}, the defaults for distilled models (LCM, Turbo, ` +
    `Lightning). This family usually takes ${usual.steps} steps and guidance ${usual.guidance}: set them in ` +
    'modes.yaml (or the lcm scheduler, for an LCM checkpoint)'
  );
}

/** Warns in the log, once per loaded key, when a mode's defaults do not suit its checkpoint's family. */
@Injectable()
export class ModeDefaultsAdvisor implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Modes');
  private readonly told = new Set<string>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly modes: ModesService,
    private readonly events: ModelEvents,
  ) {}

  onModuleInit(): void {
    this.unsubscribe = this.events.on((event) => this.onModelEvent(event));
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  private onModelEvent(event: ModelEvent): void {
    if (event.type !== 'loaded' || this.told.has(event.key)) return;
    const mode = this.modes.config.modes.get(event.mode);
    if (mode?.key !== event.key) return;
    this.told.add(event.key);
    const advice = defaultsAdvice(mode, event.architecture);
    if (advice !== undefined) this.logger.warn(advice);
  }
}
