import { realpathSync } from 'node:fs';

import type { ModesConfig } from './mode.types.js';

/**
 * The folders the model host may load from under `config`: model_root and lora_root (MODEL_ROOT and LORA_ROOT on
 * the legacy setup), with their symlinks resolved, since the model host compares resolved paths. A root that does
 * not exist (yet) is given as written: nothing can be loaded from it until it does.
 */
export function modelRoots(config: Pick<ModesConfig, 'modelRoot' | 'loraRoot'>): string[] {
  return [...new Set([config.modelRoot, config.loraRoot].map(resolved))];
}

function resolved(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return root;
  }
}
