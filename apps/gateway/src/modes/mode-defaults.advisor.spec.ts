import { parseModesFile } from './modes-config.loader.js';
import { defaultsAdvice } from './mode-defaults.advisor.js';
import { loadConfig } from '../config/app-config.js';

const config = parseModesFile(
  `
model_root: /models
default_mode: bare
modes:
  bare:
    model: sdxl/base.safetensors
  tuned:
    model: sdxl/base.safetensors
    default_steps: 30
    default_guidance: 6
  steps-only:
    model: sd15/full.safetensors
    default_steps: 25
  lcm-sampler:
    model: sd15/full.safetensors
    scheduler: lcm
  turbo:
    model: sdxl/sdxl-turbo.safetensors
  lcm-lora:
    model: sd15/full.safetensors
    loras: [lcm-lora-sd15.safetensors]
`,
  loadConfig({ MODES_WATCH: '0' }, '/tmp'),
);
const mode = (name: string) => {
  const found = config.modes.get(name);
  if (!found) throw new Error(name);
  return found;
};

describe('defaultsAdvice', () => {
  it("names the family's usual range when a full checkpoint runs at the distilled defaults", () => {
    expect(defaultsAdvice(mode('bare'), 'sdxl-base')).toBe(
      "mode 'bare' (sdxl-base, sdxl/base.safetensors) sets no default_steps and default_guidance: requests that " +
        'give none run at 4 steps and guidance 1, the defaults for distilled models (LCM, Turbo, Lightning). This ' +
        'family usually takes 25–40 steps and guidance 5–8: set them in modes.yaml (or the lcm scheduler, for an ' +
        'LCM checkpoint)',
    );
    expect(defaultsAdvice(mode('steps-only'), 'sd15')).toContain('sets no default_guidance:');
  });

  it('says nothing when the defaults are set, the model is distilled, or the family is not one it knows', () => {
    expect(defaultsAdvice(mode('tuned'), 'sdxl-base')).toBeUndefined();
    expect(defaultsAdvice(mode('lcm-sampler'), 'sd15')).toBeUndefined();
    expect(defaultsAdvice(mode('turbo'), 'sdxl-base')).toBeUndefined();
    expect(defaultsAdvice(mode('lcm-lora'), 'sd15')).toBeUndefined();
    expect(defaultsAdvice(mode('bare'), 'sdxl-refiner')).toBeUndefined();
  });
});
