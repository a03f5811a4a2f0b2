import { existsSync } from 'node:fs';

import { Injectable } from '@nestjs/common';

import { ModelFileMissingError } from '../errors/domain.errors.js';
import type { ResolvedMode } from './mode.types.js';

/** A file a mode names that is not on disk, with the YAML field that names it. */
export interface MissingFile {
  /** `modes.<name>.model`, `modes.<name>.loras[1].path`, ... */
  readonly path: string;
  /** The absolute path that was looked for. */
  readonly file: string;
}

/**
 * Asks the file system whether a mode's files are there. A reload accepts a mode whose files are missing (they may
 * be copied in later) and says so; every route that would load such a mode refuses it with a 409 naming the file
 * instead of letting the load fail. Asked on each request, so a file copied in later works without a reload; a
 * stat per file is cheap next to a generation.
 */
@Injectable()
export class ModelFilesProbe {
  /** Every file of the mode (model, config folder, VAE, LoRAs, upscaler) that does not exist now. */
  missingFiles(mode: ResolvedMode): MissingFile[] {
    const at = `modes.${mode.name}`;
    const files: MissingFile[] = [{ path: `${at}.model`, file: mode.modelPath }];
    if (mode.configDir !== undefined) files.push({ path: `${at}.config`, file: mode.configDir });
    if (mode.vaePath !== undefined) files.push({ path: `${at}.vae`, file: mode.vaePath });
    mode.loras.forEach((lora, i) => files.push({ path: `${at}.loras[${i}].path`, file: lora.absolutePath }));
    if (mode.superres) files.push({ path: `${at}.superres.model`, file: mode.superres.modelPath });
    return files.filter(({ file }) => !this.exists(file));
  }

  /** The first of the mode's files that does not exist, or undefined when all do. */
  firstMissing(mode: ResolvedMode): string | undefined {
    return this.missingFiles(mode)[0]?.file;
  }

  /** @throws ModelFileMissingError naming the first file of the mode that is not on disk */
  requireFiles(mode: ResolvedMode): void {
    const missing = this.firstMissing(mode);
    if (missing !== undefined) throw new ModelFileMissingError(mode.name, missing);
  }

  exists(file: string): boolean {
    return existsSync(file);
  }
}
