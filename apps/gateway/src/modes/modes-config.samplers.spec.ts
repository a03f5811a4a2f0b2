import { createHash } from 'node:crypto';

import { SAMPLER_NAMES } from '../common/samplers.js';
import { ModesConfigError } from '../errors/domain.errors.js';
import { parseModesConfig } from './modes-config.loader.js';
import type { ResolvedMode } from './mode.types.js';

const OPTIONS = { source: '/etc/gen/modes.yaml', baseDir: '/etc/gen', allowPickle: false };

function withMode(mode: string): string {
  return `model_root: /models\ndefault_mode: m\nmodes:\n  m:\n${mode.replace(/^/gm, '    ')}\n`;
}

function modeOf(mode: string): ResolvedMode {
  const resolved = parseModesConfig(withMode(mode), OPTIONS).modes.get('m');
  if (!resolved) throw new Error('no mode m');
  return resolved;
}

function problemsOf(mode: string): readonly string[] {
  try {
    parseModesConfig(withMode(mode), OPTIONS);
  } catch (error) {
    if (error instanceof ModesConfigError) return error.problems;
    throw error;
  }
  throw new Error('the file was accepted');
}

describe('modes.yaml sampler, clip skip, prediction type and VAE', () => {
  it('resolves every field, the VAE against model_root', () => {
    const mode = modeOf(
      'model: a.safetensors\nscheduler: dpmpp_2m_karras\nclip_skip: 2\nprediction_type: v_prediction\n' +
        'vae: vae/sdxl-fp16-fix.safetensors',
    );
    expect(mode).toMatchObject({
      sampler: 'dpmpp_2m_karras',
      clipSkip: 2,
      predictionType: 'v_prediction',
      vae: 'vae/sdxl-fp16-fix.safetensors',
      vaePath: '/models/vae/sdxl-fp16-fix.safetensors',
    });
  });

  it("leaves a mode that names none on the checkpoint's own: scheduler `default`, no clip skip, own VAE", () => {
    expect(modeOf('model: a.safetensors')).toMatchObject({
      sampler: 'default',
      clipSkip: undefined,
      predictionType: undefined,
      vae: undefined,
      vaePath: undefined,
    });
  });

  it.each(SAMPLER_NAMES)('accepts scheduler %s', (name) => {
    expect(modeOf(`model: a.safetensors\nscheduler: ${name}`).sampler).toBe(name);
  });

  it.each([
    ['scheduler: k_euler', `modes.m.scheduler: must be one of ${SAMPLER_NAMES.join(', ')}`],
    ['scheduler: 3', `modes.m.scheduler: must be one of ${SAMPLER_NAMES.join(', ')}`],
    ['clip_skip: 0', 'modes.m.clip_skip: must be at least 1 (1 = no skip, 2 = the penultimate layer)'],
    ['clip_skip: 13', 'modes.m.clip_skip: must be at most 12'],
    ['clip_skip: 1.5', 'modes.m.clip_skip: must be an integer'],
    ['clip_skip: "2"', 'modes.m.clip_skip: must be an integer'],
    ['prediction_type: x_prediction', 'modes.m.prediction_type: must be one of epsilon, v_prediction'],
    ['vae: ""', 'modes.m.vae: must not be empty'],
    ['vae: [a]', 'modes.m.vae: must be a string'],
    ['vae: ../vae.safetensors', "modes.m.vae: '../vae.safetensors' must be inside model_root (/models)"],
    [
      'vae: vae.pt',
      'modes.m.vae: .pt files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1',
    ],
  ])('refuses %j with its YAML path', (line, problem) => {
    expect(problemsOf(`model: a.safetensors\n${line}`)).toEqual([problem]);
  });

  describe('mode keys', () => {
    const keyOf = (mode: string): string => modeOf(mode).key;

    it('change with what is loaded: prediction type and VAE', () => {
      const base = keyOf('model: a.safetensors');
      expect(keyOf('model: a.safetensors\nprediction_type: v_prediction')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nprediction_type: epsilon')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nvae: v.safetensors')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nvae: w.safetensors')).not.toBe(
        keyOf('model: a.safetensors\nvae: v.safetensors'),
      );
    });

    it('stay when the sampler or clip skip changes: those never reload the model', () => {
      const base = keyOf('model: a.safetensors');
      expect(keyOf('model: a.safetensors\nscheduler: lcm')).toBe(base);
      expect(keyOf('model: a.safetensors\nscheduler: euler_a\nclip_skip: 2')).toBe(base);
    });

    it('stay what they were for modes that use none of the new fields', () => {
      const definition = { modelPath: '/models/a.safetensors', configDir: null, loras: [], superres: null };
      const hash = createHash('sha256').update(JSON.stringify(definition)).digest('hex').slice(0, 12);
      expect(keyOf('model: a.safetensors')).toBe(`m-${hash}`);
    });
  });
});
