import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../config/app-config.js';
import { ModeNotFoundError, ModesConfigError, ModesDisabledError } from '../errors/domain.errors.js';
import { diffModes, ModesService } from './modes.service.js';
import { waitFor } from '../../testing/wait-for.js';

const BASE = `
model_root: /models
lora_root: /models/loras
default_mode: a
modes:
  a:
    model: a.safetensors
    default_steps: 10
  b:
    model: b.safetensors
    loras:
      - path: detail.safetensors
        strength: 0.5
`;

/** BASE with `b`'s LoRA strength, `a`'s steps and the default mode replaced, and a mode `c` appended when asked. */
function variant(opts: { strength?: string; steps?: number; defaultMode?: string; addC?: boolean; dropB?: boolean }) {
  let text = BASE.replace('strength: 0.5', `strength: ${opts.strength ?? '0.5'}`)
    .replace('default_steps: 10', `default_steps: ${opts.steps ?? 10}`)
    .replace('default_mode: a', `default_mode: ${opts.defaultMode ?? 'a'}`);
  if (opts.dropB) text = text.slice(0, text.indexOf('  b:'));
  if (opts.addC) text += '  c:\n    model: sub/c.safetensors\n';
  return text;
}

/** Waits for what the watcher does; the deadline bounds a hang, it claims no latency. */
function eventually(check: () => boolean): Promise<unknown> {
  return waitFor(check, { what: 'the watcher to act' });
}

describe('ModesService', () => {
  let dir: string;
  let file: string;
  let service: ModesService;

  function start(env: Record<string, string> = {}): ModesService {
    service = new ModesService(loadConfig({ MODES_WATCH: '0', ...env }, dir));
    service.onModuleInit();
    return service;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'modes-service-'));
    file = join(dir, 'modes.yaml');
    writeFileSync(file, BASE);
  });

  afterEach(() => {
    service?.onModuleDestroy();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('reload', () => {
    it('replaces the snapshot with a good file and clears the last error', () => {
      start();
      const before = service.config;
      writeFileSync(file, '{');
      expect(() => service.reload('api')).toThrow(ModesConfigError);
      expect(service.lastReloadError).toBeDefined();

      writeFileSync(file, variant({ addC: true }));
      const after = service.reload('api');
      expect(after).not.toBe(before);
      expect(service.config).toBe(after);
      expect([...after.modes.keys()]).toEqual(['a', 'b', 'c']);
      expect(service.getMode('c').modelPath).toBe('/models/sub/c.safetensors');
      expect(service.lastReloadError).toBeUndefined();
    });

    it('keeps the old snapshot when the file is not valid YAML, and remembers why', () => {
      start();
      const before = service.config;
      writeFileSync(file, 'modes: [unclosed');
      expect(() => service.reload('SIGHUP')).toThrow(/not valid YAML/);
      expect(service.config).toBe(before);
      expect(service.getMode('b').name).toBe('b');
      expect(service.lastReloadError).toEqual({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        trigger: 'SIGHUP',
        source: file,
        problems: [expect.stringMatching(/^not valid YAML: /) as unknown],
      });
    });

    it('keeps the old snapshot on schema errors and reports every one with its YAML path', () => {
      start();
      const before = service.config;
      writeFileSync(file, variant({ strength: '"strong"', defaultMode: 'zz' }));
      let thrown: unknown;
      try {
        service.reload('api');
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ModesConfigError);
      expect((thrown as ModesConfigError).problems).toEqual([
        'modes.b.loras[0].strength: must be a number',
        "default_mode: 'zz' is not one of the modes (a, b)",
      ]);
      expect(service.lastReloadError?.problems).toEqual((thrown as ModesConfigError).problems);
      expect(service.config).toBe(before);
    });

    it('refuses a path that escapes its root, naming the field', () => {
      start();
      writeFileSync(file, BASE.replace('model: a.safetensors', 'model: ../../etc/passwd'));
      expect(() => service.reload('api')).toThrow("modes.a.model: '../../etc/passwd' must be inside model_root");
      expect(service.getMode('a').modelPath).toBe('/models/a.safetensors');
    });

    it('keeps the old snapshot when the file is gone', () => {
      start();
      unlinkSync(file);
      expect(() => service.reload('api')).toThrow(`modes.yaml not found: ${file}`);
      expect(service.config.modes.size).toBe(2);
      expect(service.lastReloadError?.problems).toEqual([`modes.yaml not found: ${file}`]);
    });

    it('answers a removed mode with ModeNotFoundError from then on', () => {
      start();
      expect(service.getMode('b').name).toBe('b');
      writeFileSync(file, variant({ dropB: true }));
      service.reload('api');
      expect(() => service.getMode('b')).toThrow(ModeNotFoundError);
      expect(() => service.getMode('b')).toThrow("Mode 'b' not found (modes: a)");
    });

    it('gives a mode a new key when what the model host loads changed, and keeps it otherwise', () => {
      start();
      const a = service.getMode('a');
      const b = service.getMode('b');
      // b's LoRA strength is loaded; a's default_steps is not.
      writeFileSync(file, variant({ strength: '0.9', steps: 20 }));
      service.reload('api');
      expect(service.getMode('b').key).not.toBe(b.key);
      expect(service.getMode('b').key).toMatch(/^b-[0-9a-f]{12}$/);
      expect(service.getMode('a').key).toBe(a.key);
      expect(service.getMode('a').defaultSteps).toBe(20);
      // The objects handed out before the reload are untouched: a running job keeps what it resolved.
      expect(b.loras[0].strength).toBe(0.5);
      expect(a.defaultSteps).toBe(10);
    });

    it('records a changed default_mode without loading anything', () => {
      start();
      writeFileSync(file, variant({ defaultMode: 'b' }));
      service.reload('api');
      expect(service.config.defaultMode).toBe('b');
      expect(service.defaultMode.name).toBe('b');
    });

    it('tells its reload listeners the new configuration, and nothing when a file is refused', () => {
      start();
      const told: string[] = [];
      service.onReload((config) => told.push(config.modelRoot));
      writeFileSync(file, BASE.replace('model_root: /models', 'model_root: /elsewhere'));
      service.reload('api');
      writeFileSync(file, 'modes: [');
      expect(() => service.reload('api')).toThrow(ModesConfigError);
      expect(told).toEqual(['/elsewhere']);
    });

    it('is refused with ModesDisabledError on the legacy setup', () => {
      rmSync(file);
      start({ MODEL_ROOT: '/models', MODEL: 'sd15.safetensors' });
      expect(service.isLegacy).toBe(true);
      expect(() => service.reload('api')).toThrow(ModesDisabledError);
      expect(() => service.reload('api')).toThrow(/^Mode reload needs a modes\.yaml/);
      expect(service.lastReloadError).toBeUndefined();
    });
  });

  describe('SIGHUP', () => {
    it('reloads the file, and a bad file is remembered rather than thrown', () => {
      start();
      expect(service.isLegacy).toBe(false);
      writeFileSync(file, variant({ addC: true }));
      process.emit('SIGHUP', 'SIGHUP');
      expect(service.config.modes.has('c')).toBe(true);

      writeFileSync(file, variant({ strength: 'x' }));
      process.emit('SIGHUP', 'SIGHUP');
      expect(service.config.modes.has('c')).toBe(true);
      expect(service.lastReloadError?.trigger).toBe('SIGHUP');
    });

    it('stops listening once the module is destroyed', () => {
      const listeners = process.listenerCount('SIGHUP');
      start();
      expect(process.listenerCount('SIGHUP')).toBe(listeners + 1);
      service.onModuleDestroy();
      expect(process.listenerCount('SIGHUP')).toBe(listeners);
    });

    it('is only logged on the legacy setup', () => {
      rmSync(file);
      start({ MODEL_ROOT: '/models', MODEL: 'sd15.safetensors' });
      const before = service.config;
      process.emit('SIGHUP', 'SIGHUP');
      expect(service.config).toBe(before);
    });
  });

  describe('the watcher', () => {
    it('applies a written file', async () => {
      start({ MODES_WATCH: '1' });
      writeFileSync(file, variant({ addC: true }));
      await eventually(() => service.config.modes.has('c'));
    });

    it('applies a file saved by rename, again and again', async () => {
      start({ MODES_WATCH: '1' });
      writeFileSync(join(dir, '.modes.yaml.swp'), variant({ addC: true }));
      renameSync(join(dir, '.modes.yaml.swp'), file);
      await eventually(() => service.config.modes.has('c'));
      writeFileSync(join(dir, 'modes.yaml.tmp'), variant({ dropB: true }));
      renameSync(join(dir, 'modes.yaml.tmp'), file);
      await eventually(() => !service.config.modes.has('b'));
    });

    it('keeps serving through a bad file and picks up the fix', async () => {
      start({ MODES_WATCH: '1' });
      const before = service.config;
      writeFileSync(file, variant({ strength: '"strong"' }));
      await eventually(() => service.lastReloadError !== undefined);
      expect(service.config).toBe(before);
      expect(service.lastReloadError?.trigger).toBe('watcher');
      writeFileSync(file, variant({ addC: true }));
      await eventually(() => service.lastReloadError === undefined);
      expect(service.config.modes.has('c')).toBe(true);
    });

    it('is off with MODES_WATCH=0', async () => {
      start();
      writeFileSync(file, variant({ addC: true }));
      // Give a watcher (were there one) its debounce and more, then prove the file would have loaded.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(service.config.modes.has('c')).toBe(false);
      service.reload('api');
      expect(service.config.modes.has('c')).toBe(true);
    });
  });

  describe('diffModes', () => {
    it('names the added, removed and changed modes and a new default', () => {
      start();
      const from = service.config;
      writeFileSync(file, variant({ addC: true, dropB: false, strength: '0.7', steps: 3, defaultMode: 'b' }));
      const to = service.reload('api');
      expect(diffModes(from, to)).toEqual({
        added: ['c'],
        removed: [],
        changed: ['b'],
        defaultMode: { from: 'a', to: 'b' },
      });
      expect(diffModes(to, from)).toMatchObject({ added: [], removed: ['c'], changed: ['b'] });
      expect(diffModes(to, to)).toEqual({ added: [], removed: [], changed: [], defaultMode: undefined });
    });
  });
});
