import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../config/app-config.js';
import { ModesConfigError, ModesFileNotFoundError } from '../errors/domain.errors.js';
import { loadModesConfig, parseModesConfig, readModesFile } from './modes-config.loader.js';
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

    it('change when anything the model host loads changes', () => {
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

  describe('memory policy', () => {
    const policyOf = (body: string): unknown => {
      const mode = parse(withMode(`model: a.safetensors\n${body}`)).modes.get('m');
      return mode && { keepAlive: mode.keepAlive, keepAliveMs: mode.keepAliveMs, pinned: mode.pinned };
    };

    it('defaults to kept until evicted, not pinned', () => {
      expect(policyOf('')).toEqual({ keepAlive: -1, keepAliveMs: undefined, pinned: false });
    });

    it.each([
      ['keep_alive: 0', 0],
      ['keep_alive: 30', 30_000],
      ['keep_alive: 1.5', 1_500],
      ['keep_alive: "30s"', 30_000],
      ['keep_alive: 5m', 300_000],
      ['keep_alive: 1h30m', 5_400_000],
      ['keep_alive: 500ms', 500],
      ['keep_alive: 1m30s', 90_000],
      ['keep_alive: 1d2h3m4s5ms', 93_784_005],
      ['keep_alive: 24d', 2_073_600_000],
      ['keep_alive: 2073600', 2_073_600_000],
      ['keep_alive: -1', undefined],
      ['keep_alive: "-1"', undefined],
    ])('reads %s as %s ms', (line, ms) => {
      expect(policyOf(line)).toMatchObject({ keepAliveMs: ms });
    });

    it.each([
      ['keep_alive: -2', 'must be a duration like "30s"'],
      ['keep_alive: 5 minutes', 'must be a duration like "30s"'],
      ['keep_alive: true', 'must be a duration like "30s"'],
      ['keep_alive: 30d', 'must be at most 24 days'],
      ['keep_alive: 2073601', 'must be at most 24 days'],
      ['keep_alive: 24d1ms', 'must be at most 24 days'],
      ['keep_alive: 1h1h', 'must be a duration like "30s"'],
      ['keep_alive: 30m1h', 'must be a duration like "30s"'],
      ['keep_alive: 1h 30m', 'must be a duration like "30s"'],
      ['keep_alive: ""', 'must be a duration like "30s"'],
      ['pinned: "yes"', 'must be true or false'],
    ])('refuses %s naming the field', (line, reason) => {
      const field = line.split(':')[0] ?? '';
      expect(problemsOf(withMode(`model: a.safetensors\n${line}`))).toEqual([
        expect.stringContaining(`modes.m.${field}: ${reason}`),
      ]);
    });

    it('is no part of the key: changing it reloads nothing', () => {
      const keyOf = (body: string): string | undefined =>
        parse(withMode(`model: a.safetensors\n${body}`)).modes.get('m')?.key;
      expect(keyOf('keep_alive: 5m\npinned: true')).toBe(keyOf(''));
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
      ['model: a.safetensors\ndefault_steps: 1001', 'modes.m.default_steps: must be at most 1000'],
      ['model: a.safetensors\ndefault_guidance: "7.5"', 'modes.m.default_guidance: must be a number'],
      ['model: a.safetensors\ndefault_guidance: -1', 'modes.m.default_guidance: must be at least 0'],
      ['model: a.safetensors\nmetadata: [a]', 'modes.m.metadata: must be a mapping'],
      ['model: a.safetensors\nsuperres: 4x.safetensors', 'modes.m.superres: must be a mapping with model and scale'],
      ['model: a.safetensors\nsuperres: {scale: 4}', 'modes.m.superres.model: is required'],
      [
        'model: a.safetensors\nsuperres: {model: u.safetensors, scale: 1}',
        'modes.m.superres.scale: must be at least 2',
      ],
      [
        'model: a.safetensors\nsuperres: [{model: u.safetensors, scale: 2}]',
        'modes.m.superres: must be a mapping with model and scale',
      ],
      ['model: a.safetensors\nsteps: 4', 'modes.m.steps: unknown field'],
      [
        'model: a.safetensors\nloras: [null]',
        'modes.m.loras[0]: must be a path or a mapping with path, strength and adapter_name',
      ],
      [
        'model: a.safetensors\nloras: [[{path: y.safetensors}]]',
        'modes.m.loras[0]: must be a path or a mapping with path, strength and adapter_name',
      ],
      ['model: a.safetensors\ntoString: x', 'modes.m.toString: unknown field'],
      ['model: a.safetensors\nloras: [{path: y.safetensors, valueOf: 1}]', 'modes.m.loras[0].valueOf: unknown field'],
      ['model: a.safetensors\nsuperres: {model: u.safetensors, valueOf: 1}', 'modes.m.superres.valueOf: unknown field'],
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

/** Nine lines of nested anchors: 9^9 strings once a copy expands the aliases, 342 bytes as text. */
function billionLaughs(): string {
  let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let previous = 'a';
  for (const name of 'bcdefghi') {
    text += `${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]\n`;
    previous = name;
  }
  return text;
}

describe('hostile modes files', () => {
  it('refuses a billion-laughs file before expanding it, naming MODES_FILE_MAX_NODES', () => {
    const bomb = billionLaughs();
    expect(bomb.length).toBe(342);
    expect(problemsOf(bomb)).toEqual([
      'the file holds more than 100000 values (MODES_FILE_MAX_NODES), each use of a YAML alias (*name) counted again',
    ]);
  });

  it('counts aliases as often as they are used, and accepts them within the bound', () => {
    const shared = withMode('model: a.safetensors\nloras: &shared [x.safetensors, y.safetensors]', '').concat(
      '  n:\n    model: b.safetensors\n    loras: *shared\n',
    );
    expect(
      parse(shared)
        .modes.get('n')
        ?.loras.map((lora) => lora.path),
    ).toEqual(['x.safetensors', 'y.safetensors']);
    // The document, 3 top-level values, 2 modes, 2 + 2 fields, 2 + 2 LoRAs (the second pair through the alias).
    expect(() => parseModesConfig(shared, { ...OPTIONS, maxNodes: 14 })).not.toThrow();
    expect(() => parseModesConfig(shared, { ...OPTIONS, maxNodes: 13 })).toThrow('more than 13 values');
  });

  it('refuses a self-referencing alias', () => {
    expect(problemsOf(`${withMode('model: a.safetensors')}x: &loop [*loop]\n`)).toEqual([
      expect.stringMatching(/^x(\[0\]){63}: nested deeper than 64 levels/),
    ]);
  });

  it('refuses nesting deeper than 64 levels built from aliases', () => {
    let text = withMode('model: a.safetensors') + 'deep0: &d0 [1]\n';
    for (let level = 1; level <= 70; level += 1) text += `deep${level}: &d${level} [*d${level - 1}]\n`;
    expect(problemsOf(text)).toEqual([expect.stringMatching(/^deep\d+(\[0\])+: nested deeper than 64 levels/)]);
  });

  it('refuses a mode named __proto__ with a problem line, and serves modes named like other Object members', () => {
    expect(problemsOf(withMode('model: a.safetensors', '').concat('  __proto__:\n    model: b.safetensors\n'))).toEqual(
      [
        "modes.__proto__: '__proto__' cannot be a mode name; mode names may only use letters, digits, '.', '_' and '-', and start with a letter or digit",
      ],
    );
    const config = parse(
      `model_root: /models\ndefault_mode: constructor\nmodes:\n  constructor:\n    model: a.safetensors\n` +
        `  prototype:\n    model: b.safetensors\n  toString:\n    model: c.safetensors\n`,
    );
    expect([...config.modes.keys()]).toEqual(['constructor', 'prototype', 'toString']);
    expect(config.modes.get('constructor')?.modelPath).toBe('/models/a.safetensors');
  });

  it('refuses __proto__ and constructor as keys anywhere else', () => {
    expect(problemsOf(withMode('model: a.safetensors\nconstructor: 1'))).toEqual([
      "modes.m.constructor: 'constructor' is not allowed as a key",
    ]);
    expect(problemsOf(withMode('model: a.safetensors\nmetadata:\n  __proto__: {x: 1}'))).toEqual([
      "modes.m.metadata.__proto__: '__proto__' is not allowed as a key",
    ]);
  });

  it('refuses a lone UTF-16 surrogate, naming the path', () => {
    expect(problemsOf(withMode('model: "a\\ud800.safetensors"'))).toEqual([
      'modes.m.model: holds a lone UTF-16 surrogate, which is not text',
    ]);
  });
});

describe('readModesFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'modes-read-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file up to MODES_FILE_MAX_BYTES, refuses a larger one by its size, and answers undefined when missing', () => {
    const file = join(dir, 'modes.yaml');
    writeFileSync(file, 'x'.repeat(100));
    expect(readModesFile(file, 100)).toBe('x'.repeat(100));
    expect(() => readModesFile(file, 99)).toThrow(ModesConfigError);
    expect(() => readModesFile(file, 99)).toThrow('the file is 100 bytes, more than MODES_FILE_MAX_BYTES (99 bytes)');
    expect(readModesFile(join(dir, 'missing.yaml'), 100)).toBeUndefined();
  });

  it('stops reading at the bound when the file reports no size', () => {
    expect(() => readModesFile('/dev/zero', 1000)).toThrow('the file is more than MODES_FILE_MAX_BYTES (1000 bytes)');
  });
});

describe('paths through symbolic links', () => {
  let dir: string;
  let root: string;
  let outside: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'modes-links-'));
    root = join(dir, 'models');
    outside = join(dir, 'elsewhere');
    mkdirSync(join(root, 'real'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, 'evil.safetensors'), '');
    writeFileSync(join(root, 'real', 'good.safetensors'), '');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function problems(mode: string, top = ''): readonly string[] {
    return problemsIn(`model_root: ${root}\ndefault_mode: m\n${top}modes:\n  m:\n${mode.replace(/^/gm, '    ')}\n`);
  }

  function problemsIn(text: string): readonly string[] {
    try {
      parseModesConfig(text, OPTIONS);
    } catch (error) {
      if (error instanceof ModesConfigError) return error.problems;
      throw error;
    }
    return [];
  }

  it('refuses a link in the root that leads out of it, for every path field, naming the YAML path', () => {
    symlinkSync(join(outside, 'evil.safetensors'), join(root, 'link.safetensors'));
    symlinkSync(outside, join(root, 'linked-dir'));
    const real = realpathSync(outside);
    expect(
      problems(
        'model: link.safetensors\nconfig: linked-dir\nloras: [linked-dir/evil.safetensors]\n' +
          'superres:\n  model: linked-dir/evil.safetensors',
      ),
    ).toEqual([
      `modes.m.model: 'link.safetensors' resolves outside model_root: it leads to ${real}/evil.safetensors, not into ${realpathSync(root)}`,
      `modes.m.config: 'linked-dir' resolves outside model_root: it leads to ${real}, not into ${realpathSync(root)}`,
      `modes.m.loras[0].path: 'linked-dir/evil.safetensors' resolves outside lora_root: it leads to ${real}/evil.safetensors, not into ${realpathSync(root)}`,
      `modes.m.superres.model: 'linked-dir/evil.safetensors' resolves outside model_root: it leads to ${real}/evil.safetensors, not into ${realpathSync(root)}`,
    ]);
  });

  it('refuses a missing file under a link that leads out, and a dangling link whose target is outside', () => {
    symlinkSync(outside, join(root, 'linked-dir'));
    symlinkSync(join(outside, 'not-yet.safetensors'), join(root, 'dangling.safetensors'));
    expect(problems('model: linked-dir/missing.safetensors')).toEqual([
      expect.stringMatching(/^modes\.m\.model: 'linked-dir\/missing\.safetensors' resolves outside model_root/),
    ]);
    expect(problems('model: dangling.safetensors')).toEqual([
      expect.stringMatching(/^modes\.m\.model: 'dangling\.safetensors' resolves outside model_root/),
    ]);
  });

  it('accepts links that stay inside the root, a root that is itself a link, and files missing inside it', () => {
    symlinkSync(join(root, 'real', 'good.safetensors'), join(root, 'alias.safetensors'));
    symlinkSync('real', join(root, 'relative-dir'));
    expect(problems('model: alias.safetensors\nloras: [relative-dir/good.safetensors, missing.safetensors]')).toEqual(
      [],
    );
    const linkedRoot = join(dir, 'root-link');
    symlinkSync(root, linkedRoot);
    const text = `model_root: ${linkedRoot}\ndefault_mode: m\nmodes:\n  m:\n    model: alias.safetensors\n`;
    expect(parseModesConfig(text, OPTIONS).modes.get('m')?.modelPath).toBe(join(linkedRoot, 'alias.safetensors'));
  });

  it('checks each file of a folder on its own: a link out among plain files is refused wherever it comes', () => {
    symlinkSync(join(outside, 'evil.safetensors'), join(root, 'real', 'link.safetensors'));
    const refused = (name: string): string =>
      `modes.${name}.model: 'real/link.safetensors' resolves outside model_root: it leads to ` +
      `${realpathSync(outside)}/evil.safetensors, not into ${realpathSync(root)}`;
    const problemsOf = (models: readonly string[]): readonly string[] =>
      problemsIn(
        `model_root: ${root}\ndefault_mode: m0\nmodes:\n` +
          models.map((model, index) => `  m${index}:\n    model: real/${model}.safetensors\n`).join(''),
      );
    expect(problemsOf(['good', 'link', 'good', 'link'])).toEqual([refused('m1'), refused('m3')]);
    expect(problemsOf(['link', 'good'])).toEqual([refused('m0')]);
  });

  it('refuses a link loop with a reason', () => {
    symlinkSync('loop-b', join(root, 'loop-a'));
    symlinkSync('loop-a', join(root, 'loop-b'));
    expect(problems('model: loop-a')).toEqual([
      "modes.m.model: 'loop-a' cannot be resolved: more than 40 symbolic links (a loop?)",
    ]);
  });
});
