import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../config/app-config.js';
import { ModesConfigError, ModesFileNotFoundError } from '../errors/domain.errors.js';
import { loadModesConfig, parseModesConfig } from './modes-config.loader.js';
import type { ModesConfig } from './mode.types.js';

const OPTIONS = { source: '/etc/gen/modes.yaml', baseDir: '/etc/gen', allowPickle: false };

function parse(yaml: string, allowPickle = false): ModesConfig {
  return parseModesConfig(yaml, { ...OPTIONS, allowPickle });
}

/** The problems a file is refused for, as the error lists them. */
function problemsOf(yaml: string, allowPickle = false): readonly string[] {
  try {
    parse(yaml, allowPickle);
  } catch (error) {
    if (error instanceof ModesConfigError) return error.problems;
    throw error;
  }
  throw new Error('the file was accepted');
}

/** A valid file with one mode `m`, whose body is `mode` (indented four spaces). */
function withMode(mode: string, top = ''): string {
  return `model_root: /models\ndefault_mode: m\n${top}modes:\n  m:\n${mode.replace(/^/gm, '    ')}\n`;
}

const SPEC_EXAMPLE = `
model_root: /models
lora_root: /models/loras
default_mode: sdxl-general

modes:
  sdxl-general:
    model: sdxl/sdxl-base-1.0.safetensors
    default_size: "1024x1024"
    default_steps: 30
    default_guidance: 7.5

  portraits:
    model: sdxl/sdxl-base-1.0.safetensors
    config: configs/sdxl
    loras:
      - detail-tweaker.safetensors
      - path: portrait-enhancer.safetensors
        strength: 0.8
        adapter_name: portrait
    default_size: "896x1152"
    metadata:
      description: "SDXL with a portrait LoRA"
      any_key: [1, 2]
    superres:
      model: upscalers/4x.safetensors
      scale: 4
`;

describe('parseModesConfig', () => {
  describe('a valid file', () => {
    const config = parse(SPEC_EXAMPLE);

    it('keeps the top level', () => {
      expect(config.source).toBe('/etc/gen/modes.yaml');
      expect(config.legacy).toBe(false);
      expect(config.modelRoot).toBe('/models');
      expect(config.loraRoot).toBe('/models/loras');
      expect(config.defaultMode).toBe('sdxl-general');
      expect([...config.modes.keys()]).toEqual(['sdxl-general', 'portraits']);
    });

    it('fills the defaults of a mode that sets none', () => {
      const mode = parse(withMode('model: sd15.safetensors')).modes.get('m');
      expect(mode).toMatchObject({
        model: 'sd15.safetensors',
        modelPath: '/models/sd15.safetensors',
        configDir: undefined,
        loras: [],
        defaultSize: { width: 512, height: 512 },
        defaultSteps: 4,
        defaultGuidance: 1.0,
        metadata: undefined,
        superres: undefined,
      });
    });

    it('keeps the values a mode sets', () => {
      expect(config.modes.get('sdxl-general')).toMatchObject({
        model: 'sdxl/sdxl-base-1.0.safetensors',
        modelPath: '/models/sdxl/sdxl-base-1.0.safetensors',
        defaultSize: { width: 1024, height: 1024 },
        defaultSteps: 30,
        defaultGuidance: 7.5,
      });
    });

    it('normalises both LoRA forms to path, strength and adapter name, resolved against lora_root', () => {
      expect(config.modes.get('portraits')?.loras).toEqual([
        {
          path: 'detail-tweaker.safetensors',
          absolutePath: '/models/loras/detail-tweaker.safetensors',
          strength: 1.0,
          adapterName: 'detail-tweaker',
        },
        {
          path: 'portrait-enhancer.safetensors',
          absolutePath: '/models/loras/portrait-enhancer.safetensors',
          strength: 0.8,
          adapterName: 'portrait',
        },
      ]);
    });

    it('gives a LoRA in full form without strength or adapter_name the same defaults', () => {
      const mode = parse(withMode('model: a.safetensors\nloras:\n  - path: sub/style.v2.safetensors')).modes.get('m');
      expect(mode?.loras).toEqual([
        {
          path: 'sub/style.v2.safetensors',
          absolutePath: '/models/sub/style.v2.safetensors',
          strength: 1.0,
          adapterName: 'style.v2',
        },
      ]);
    });

    it('resolves config and superres against model_root and keeps metadata as written', () => {
      expect(config.modes.get('portraits')).toMatchObject({
        configDir: '/models/configs/sdxl',
        superres: { modelPath: '/models/upscalers/4x.safetensors', scale: 4 },
        metadata: { description: 'SDXL with a portrait LoRA', any_key: [1, 2] },
      });
    });

    it('lets lora_root default to model_root', () => {
      const mode = parse(withMode('model: a.safetensors\nloras: [x.safetensors]')).modes.get('m');
      expect(mode?.loras[0]?.absolutePath).toBe('/models/x.safetensors');
    });

    it("resolves relative roots against the file's folder", () => {
      const relative = parse(
        'model_root: models\nlora_root: ./loras\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n',
      );
      expect(relative.modelRoot).toBe('/etc/gen/models');
      expect(relative.loraRoot).toBe('/etc/gen/loras');
      expect(relative.modes.get('m')?.modelPath).toBe('/etc/gen/models/a.safetensors');
    });

    it('accepts an absolute path inside its root', () => {
      expect(parse(withMode('model: /models/sd15/a.safetensors')).modes.get('m')?.modelPath).toBe(
        '/models/sd15/a.safetensors',
      );
    });

    it('is frozen', () => {
      expect(Object.isFrozen(config)).toBe(true);
      expect(Object.isFrozen(config.modes.get('portraits'))).toBe(true);
    });
  });

  describe('mode keys', () => {
    const keyOf = (mode: string): string | undefined => parse(withMode(mode)).modes.get('m')?.key;

    it('are the mode name and 12 hex digits of a hash of the definition', () => {
      expect(keyOf('model: a.safetensors')).toMatch(/^m-[0-9a-f]{12}$/);
      expect(keyOf('model: a.safetensors')).toBe(keyOf('model: a.safetensors'));
    });

    it('change when anything the sidecar loads changes', () => {
      const base = keyOf('model: a.safetensors\nloras: [x.safetensors]');
      expect(keyOf('model: b.safetensors\nloras: [x.safetensors]')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nloras: [{path: x.safetensors, strength: 0.5}]')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nloras: [{path: x.safetensors, adapter_name: y}]')).not.toBe(base);
      expect(keyOf('model: a.safetensors\nconfig: cfg\nloras: [x.safetensors]')).not.toBe(base);
    });

    it('stay when only defaults or metadata change', () => {
      const base = keyOf('model: a.safetensors');
      expect(keyOf('model: a.safetensors\ndefault_steps: 20\ndefault_size: "768x768"')).toBe(base);
      expect(keyOf('model: a.safetensors\nmetadata: {description: x}')).toBe(base);
    });

    it('normalise both LoRA forms alike', () => {
      expect(keyOf('model: a.safetensors\nloras: [x.safetensors]')).toBe(
        keyOf('model: a.safetensors\nloras: [{path: x.safetensors, strength: 1.0, adapter_name: x}]'),
      );
    });
  });

  describe('validation', () => {
    it.each([
      ['default_mode: m\nmodes:\n  m:\n    model: a.safetensors\n', 'model_root: is required'],
      ['model_root: ""\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n', 'model_root: must not be empty'],
      ['model_root: 3\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n', 'model_root: must be a string'],
      ['model_root: /m\nmodes:\n  m:\n    model: a.safetensors\n', 'default_mode: is required'],
      ['model_root: /m\ndefault_mode: m\n', 'modes: is required'],
      ['model_root: /m\ndefault_mode: m\nmodes: [a, b]\n', 'modes: must be a mapping of mode names to modes'],
      ['model_root: /m\ndefault_mode: m\nmodes: {}\n', 'modes: must define at least one mode'],
      [
        'model_root: /m\ndefault_mode: x\nmodes:\n  m:\n    model: a.safetensors\n',
        "default_mode: 'x' is not one of the modes (m)",
      ],
      [
        'model_root: /m\nlora_root: 7\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n',
        'lora_root: must be a string',
      ],
      [withMode('model: a.safetensors', 'colour: red\n'), 'colour: unknown field'],
    ])('top level: %j', (yaml, problem) => {
      expect(problemsOf(yaml)).toEqual([problem]);
    });

    it.each([
      ['default_steps: 4', 'modes.m.model: is required'],
      ['model: ""', 'modes.m.model: must not be empty'],
      ['model: [a]', 'modes.m.model: must be a string'],
      ['model: a.safetensors\nconfig: 5', 'modes.m.config: must be a string'],
      ['model: a.safetensors\nloras: x.safetensors', 'modes.m.loras: must be a list'],
      [
        'model: a.safetensors\nloras: [x.safetensors, 3]',
        'modes.m.loras[1]: must be a path or a mapping with path, strength and adapter_name',
      ],
      ['model: a.safetensors\nloras: [x.safetensors, {strength: 1}]', 'modes.m.loras[1].path: is required'],
      [
        'model: a.safetensors\nloras:\n  - x.safetensors\n  - path: y.safetensors\n    strength: high',
        'modes.m.loras[1].strength: must be a number',
      ],
      [
        'model: a.safetensors\nloras: [{path: y.safetensors, adapter_name: 1}]',
        'modes.m.loras[0].adapter_name: must be a string',
      ],
      ['model: a.safetensors\nloras: [{path: y.safetensors, weight: 1}]', 'modes.m.loras[0].weight: unknown field'],
      [
        'model: a.safetensors\nloras: [a/x.safetensors, b/x.safetensors]',
        "modes.m.loras[1].adapter_name: 'x' is already used by loras[0]; set a different adapter_name",
      ],
      ['model: a.safetensors\ndefault_size: 512', 'modes.m.default_size: must be WIDTHxHEIGHT, e.g. "512x512"'],
      [
        'model: a.safetensors\ndefault_size: "500x512"',
        'modes.m.default_size: width and height must both be multiples of 8',
      ],
      [
        'model: a.safetensors\ndefault_size: "4096x512"',
        'modes.m.default_size: width and height must each be from 8 to 2048',
      ],
      ['model: a.safetensors\ndefault_steps: 4.5', 'modes.m.default_steps: must be an integer'],
      ['model: a.safetensors\ndefault_steps: 0', 'modes.m.default_steps: must be at least 1'],
      ['model: a.safetensors\ndefault_steps: 151', 'modes.m.default_steps: must be at most 150'],
      ['model: a.safetensors\ndefault_guidance: "7.5"', 'modes.m.default_guidance: must be a number'],
      ['model: a.safetensors\ndefault_guidance: -1', 'modes.m.default_guidance: must be at least 0'],
      ['model: a.safetensors\nmetadata: [a]', 'modes.m.metadata: must be a mapping'],
      ['model: a.safetensors\nsuperres: 4x.safetensors', 'modes.m.superres: must be a mapping with model and scale'],
      ['model: a.safetensors\nsuperres: {scale: 4}', 'modes.m.superres.model: is required'],
      [
        'model: a.safetensors\nsuperres: {model: u.safetensors, scale: 1}',
        'modes.m.superres.scale: must be at least 2',
      ],
      ['model: a.safetensors\nsteps: 4', 'modes.m.steps: unknown field'],
    ])('mode field: %j', (mode, problem) => {
      expect(problemsOf(withMode(mode))).toEqual([problem]);
    });

    it('refuses a mode that is not a mapping, and a name that cannot travel in a header', () => {
      expect(problemsOf('model_root: /m\ndefault_mode: m\nmodes:\n  m: a.safetensors\n')).toEqual([
        'modes.m: must be a mapping with at least a model',
      ]);
      expect(
        problemsOf(
          "model_root: /m\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n  'bad name':\n    model: b\n",
        ),
      ).toEqual([
        "modes.bad name: mode names may only use letters, digits, '.', '_' and '-', and start with a letter or digit",
      ]);
    });

    it('collects every problem of every mode in one pass', () => {
      const yaml = `
model_root: /models
default_mode: nowhere
modes:
  portraits:
    model: ../escape.ckpt
    loras:
      - ok.safetensors
      - path: detail.safetensors
        strength: lots
    default_steps: 0
  landscapes:
    default_size: "768x500"
`;
      expect(problemsOf(yaml)).toEqual([
        'modes.portraits.loras[1].strength: must be a number',
        'modes.portraits.default_steps: must be at least 1',
        'modes.portraits.model: .ckpt files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1',
        "modes.portraits.model: '../escape.ckpt' must be inside model_root (/models)",
        'modes.landscapes.model: is required',
        'modes.landscapes.default_size: width and height must both be multiples of 8',
        "default_mode: 'nowhere' is not one of the modes (portraits, landscapes)",
      ]);
    });

    it('says so when the file is not YAML, or not a mapping', () => {
      expect(problemsOf('modes: [unclosed')[0]).toMatch(/^not valid YAML: /);
      expect(problemsOf('- just\n- a list\n')).toEqual(['must be a mapping with model_root, default_mode and modes']);
      expect(problemsOf('')).toEqual(['not valid YAML: expected a document, but the input is empty']);
    });

    it('names the file in the error message', () => {
      expect(() => parse(withMode('model: ""'))).toThrow(
        'Invalid /etc/gen/modes.yaml:\n  - modes.m.model: must not be empty',
      );
    });
  });

  describe('paths that leave their root', () => {
    it.each([
      ['model: ../other/a.safetensors', "modes.m.model: '../other/a.safetensors' must be inside model_root (/models)"],
      ['model: sd/../../a.safetensors', "modes.m.model: 'sd/../../a.safetensors' must be inside model_root (/models)"],
      [
        'model: /etc/passwd.safetensors',
        "modes.m.model: '/etc/passwd.safetensors' must be inside model_root (/models)",
      ],
      [
        'model: /models-other/a.safetensors',
        "modes.m.model: '/models-other/a.safetensors' must be inside model_root (/models)",
      ],
      ['model: .', "modes.m.model: '.' must be inside model_root (/models)"],
      ['model: a.safetensors\nconfig: ../configs', "modes.m.config: '../configs' must be inside model_root (/models)"],
      [
        'model: a.safetensors\nloras: [../x.safetensors]',
        "modes.m.loras[0].path: '../x.safetensors' must be inside lora_root (/models)",
      ],
      [
        'model: a.safetensors\nloras: [{path: /tmp/x.safetensors}]',
        "modes.m.loras[0].path: '/tmp/x.safetensors' must be inside lora_root (/models)",
      ],
      [
        'model: a.safetensors\nsuperres: {model: ../up.safetensors}',
        "modes.m.superres.model: '../up.safetensors' must be inside model_root (/models)",
      ],
    ])('%j', (mode, problem) => {
      expect(problemsOf(withMode(mode))).toEqual([problem]);
    });

    it('checks LoRAs against lora_root, not model_root', () => {
      const yaml = 'model_root: /models\nlora_root: /loras\ndefault_mode: m\nmodes:\n  m:\n    model: a.safetensors\n';
      expect(problemsOf(`${yaml}    loras: [/models/x.safetensors]\n`)).toEqual([
        "modes.m.loras[0].path: '/models/x.safetensors' must be inside lora_root (/loras)",
      ]);
      expect(parse(`${yaml}    loras: [/loras/x.safetensors]\n`).modes.get('m')?.loras[0]?.absolutePath).toBe(
        '/loras/x.safetensors',
      );
    });

    it('allows a name that merely starts with two dots', () => {
      expect(parse(withMode('model: ..hidden.safetensors')).modes.get('m')?.modelPath).toBe(
        '/models/..hidden.safetensors',
      );
    });
  });

  describe('pickle checkpoints', () => {
    it.each(['.ckpt', '.pt', '.bin', '.pth', '.CKPT'])('refuses %s unless ALLOW_PICKLE=1', (extension) => {
      const mode = `model: a${extension}`;
      expect(problemsOf(withMode(mode))).toEqual([
        `modes.m.model: ${extension.toLowerCase()} files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1`,
      ]);
      expect(parse(withMode(mode), true).modes.get('m')?.modelPath).toBe(`/models/a${extension}`);
    });

    it('refuses pickled LoRAs and upscalers too', () => {
      expect(problemsOf(withMode('model: a.safetensors\nloras: [x.bin]\nsuperres: {model: up.pth, scale: 4}'))).toEqual(
        [
          'modes.m.loras[0].path: .bin files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1',
          'modes.m.superres.model: .pth files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1',
        ],
      );
    });

    it('accepts a diffusers folder (no extension)', () => {
      expect(parse(withMode('model: sdxl-base')).modes.get('m')?.modelPath).toBe('/models/sdxl-base');
    });
  });
});

describe('loadModesConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'modes-spec-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads MODES_FILE', () => {
    writeFileSync(join(dir, 'modes.yaml'), withMode('model: a.safetensors'));
    const config = loadModesConfig(loadConfig({}, dir));
    expect(config.source).toBe(join(dir, 'modes.yaml'));
    expect(config.modes.get('m')?.modelPath).toBe('/models/a.safetensors');
  });

  it('fails with "modes.yaml not found: <path>" when the file and the legacy variables are missing', () => {
    const config = loadConfig({ MODES_FILE: 'conf/modes.yaml', MODEL_ROOT: '/models' }, dir);
    expect(() => loadModesConfig(config)).toThrow(ModesFileNotFoundError);
    expect(() => loadModesConfig(config)).toThrow(`modes.yaml not found: ${join(dir, 'conf/modes.yaml')}`);
  });

  it('falls back to MODEL_ROOT, MODEL and LORA_ROOT: one mode named after the model', () => {
    const config = loadModesConfig(
      loadConfig({ MODEL_ROOT: '/models', MODEL: 'sdxl/sdxl-base-1.0.safetensors', LORA_ROOT: '/loras' }, dir),
    );
    expect(config.legacy).toBe(true);
    expect(config.defaultMode).toBe('sdxl-base-1.0');
    expect(config.loraRoot).toBe('/loras');
    expect(config.modes.get('sdxl-base-1.0')).toMatchObject({
      model: 'sdxl/sdxl-base-1.0.safetensors',
      modelPath: '/models/sdxl/sdxl-base-1.0.safetensors',
      defaultSize: { width: 512, height: 512 },
    });
  });

  it('applies the same rules to the legacy variables', () => {
    const config = loadConfig({ MODEL_ROOT: '/models', MODEL: 'sd15.ckpt' }, dir);
    expect(() => loadModesConfig(config)).toThrow('Invalid legacy MODEL_ROOT/MODEL environment');
  });
});
