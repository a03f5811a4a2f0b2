import { existsSync } from 'node:fs';

import { Injectable } from '@nestjs/common';

import type { ResolvedMode } from '../modes/mode.types.js';

/** Asks the file system whether a mode's files are there, so that a switch to a mode that cannot load is refused. */
@Injectable()
export class ModelFilesProbe {
  /** The first of the mode's files (model, LoRAs, upscaler) that does not exist, or undefined when all do. */
  firstMissing(mode: ResolvedMode): string | undefined {
    const files = [mode.modelPath, ...mode.loras.map((lora) => lora.absolutePath)];
    if (mode.superres) files.push(mode.superres.modelPath);
    return files.find((file) => !existsSync(file));
  }
}
