import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir, ROOT } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';
import { ModelHost, startModelHost } from './support/model-host-process';
import { waitFor } from './support/wait-for';

interface ModeYaml {
  model: string;
  config?: string;
  loras?: (string | { path: string; strength: unknown; adapter_name?: string })[];
  default_size?: string;
  superres?: unknown;
  [key: string]: unknown;
}

interface ModesYaml {
  model_root: string;
  lora_root?: string;
  default_mode: string;
  modes: Record<string, ModeYaml>;
}

interface ModesReply {
  default_mode: string;
  modes: Record<string, { model: string; default_size: string }>;
}

interface ErrorReply {
  error: string;
  message: string;
  statusCode: number;
  problems?: string[];
}

/** Hot reload of modes.yaml against the built gateway and a real model host on the demo models. */
describe('modes.yaml reload', () => {
  // One model host for the file; each test gets a fresh gateway on its own copy of the demo modes.yaml.
  let modelHost: ModelHost;
  let folder: string;
  let modesFile: string;
  let gateway: Gateway | undefined;

  beforeAll(() => {
    modelHost = startModelHost();
  });

  afterAll(async () => {
    await modelHost.stop();
  });

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-modes-'));
    modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, readFileSync(join(demoDir(), 'modes.yaml')));
  });

  afterEach(async () => {
    // SIGHUP and every reload leave the gateway serving: it still stops cleanly.
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
    rmSync(folder, { recursive: true, force: true });
  });

  async function start(env: Record<string, string> = {}, waitFor?: '/ready' | '/health'): Promise<Gateway> {
    gateway = await startGateway({ MODES_FILE: modesFile, SIDECAR_ADDR: modelHost.addr, ...env }, { waitFor });
    return gateway;
  }

  function readModes(): ModesYaml {
    return load(readFileSync(modesFile, 'utf8')) as ModesYaml;
  }

  function writeModes(document: ModesYaml): void {
    writeFileSync(modesFile, dump(document));
  }

  async function listModes(): Promise<ModesReply> {
    const response = await fetch(`${gateway!.url}/api/modes`);
    expect(response.status).toBe(200);
    return (await response.json()) as ModesReply;
  }

  /**
   * Polls GET /api/modes until `check` holds, and fails loudly if it never does. How fast a change is served is a
   * benchmark's business (bench/reload-latency.mjs, docs/BENCHMARKS.md), not a test's: the deadline only bounds
   * a hang.
   */
  async function served(what: string, check: (modes: ModesReply) => boolean): Promise<ModesReply> {
    let last: ModesReply | undefined;
    await waitFor(
      async () => {
        last = await listModes();
        return check(last);
      },
      { what, intervalMs: 20, context: () => gateway!.logs() },
    );
    return last!;
  }

  function switchTo(mode: string): Promise<Response> {
    return fetch(`${gateway!.url}/api/modes/switch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode }),
    });
  }

  async function modelsStatus(): Promise<{ current_mode: string | null; last_switch_error: unknown }> {
    const response = await fetch(`${gateway!.url}/api/models/status`);
    return (await response.json()) as { current_mode: string | null; last_switch_error: unknown };
  }

  async function reload(): Promise<Response> {
    return fetch(`${gateway!.url}/api/modes/reload`, { method: 'POST' });
  }

  async function generate(body: Record<string, unknown>): Promise<Response> {
    return fetch(`${gateway!.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** A new mode on the tiny SD1.5 checkpoint with its own LoRA strength (so a new key) and its own size. */
  function withAddedMode(document: ModesYaml, name: string): ModesYaml {
    const base = document.modes['sd15-detail'];
    const lora = base.loras?.[0];
    if (typeof lora !== 'string') throw new Error("the demo's sd15-detail names its LoRA in the simple form");
    return {
      ...document,
      modes: {
        ...document.modes,
        [name]: {
          model: base.model,
          config: base.config,
          loras: [{ path: lora, strength: 0.5 }],
          default_size: '48x32',
        },
      },
    };
  }

  it('serves a mode added to the file, for GET /api/modes and POST /generate', async () => {
    await start();
    writeModes(withAddedMode(readModes(), 'added'));
    const modes = await served('the added mode to be listed', (m) => 'added' in m.modes);
    expect(modes.modes.added.default_size).toBe('48x32');

    const response = await generate({ mode: 'added', prompt: 'a lighthouse', num_inference_steps: 2 });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('added');
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 48, height: 32 });
    // What the SIGHUP test relies on to tell the watcher is off: a watcher says where it watches.
    expect(gateway!.logs()).toContain(`watching ${folder} for changes to modes.yaml`);
    await gateway!.logged('reloaded (watcher)');
  });

  it('picks up a save by rename (a temporary file moved over modes.yaml), twice', async () => {
    await start();
    const original = readModes();
    for (const name of ['renamed-1', 'renamed-2']) {
      const temporary = join(folder, `.modes.yaml.${name}.tmp`);
      writeFileSync(temporary, dump(withAddedMode(original, name)));
      renameSync(temporary, modesFile);
      await served(`mode '${name}' to be listed`, (m) => name in m.modes);
    }
    const response = await generate({ mode: 'renamed-2', prompt: 'x', num_inference_steps: 2 });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('renamed-2');
  });

  it('keeps serving the old modes through a broken file; the reload endpoint answers 400 with the YAML path', async () => {
    await start();
    const before = await listModes();

    writeFileSync(modesFile, 'modes: [this is: not yaml');
    const invalidYaml = await reload();
    expect(invalidYaml.status).toBe(400);
    const yamlError = (await invalidYaml.json()) as ErrorReply;
    expect(yamlError.error).toBe('invalid_modes_file');
    expect(yamlError.message).toContain('not valid YAML');
    expect(await listModes()).toEqual(before);

    const document = readModesFrom(join(demoDir(), 'modes.yaml'));
    const portrait = document.modes['sdxl-portrait'];
    const lora = portrait.loras?.[0] as { path: string; strength: unknown };
    lora.strength = 'very strong';
    document.modes['sd15-fast'].default_steps = 0;
    writeModes(document);
    const schemaError = await reload();
    expect(schemaError.status).toBe(400);
    const body = (await schemaError.json()) as ErrorReply;
    expect(body.problems).toEqual(
      expect.arrayContaining([
        'modes.sdxl-portrait.loras[0].strength: must be a number',
        expect.stringMatching(/^modes\.sd15-fast\.default_steps: /) as unknown,
      ]),
    );
    expect(body.message).toContain('modes.sdxl-portrait.loras[0].strength: must be a number');
    expect(body.message).not.toMatch(/at .*\.(js|ts):\d+/);

    // The running configuration is the one from before both files, and it still generates.
    expect(await listModes()).toEqual(before);
    const response = await generate({ mode: 'sdxl-portrait', prompt: 'x', num_inference_steps: 2 });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('sdxl-portrait');
    await gateway!.logged('still serving the previous');
  });

  it('reloads on SIGHUP with the watcher off (MODES_WATCH=0), and only then', async () => {
    await start({ MODES_WATCH: '0' });
    writeModes(withAddedMode(readModes(), 'after-hup'));
    // "Not listed right after the write" would prove nothing (a watcher's debounce alone gives it): that no watcher
    // reloads is shown by the log below, whose lines the first test sees when the watcher is on.
    gateway!.process.kill('SIGHUP');
    await served('the mode written before SIGHUP to be listed', (m) => 'after-hup' in m.modes);
    // The reload came from the signal: no watcher was set up, and none reloaded anything.
    await gateway!.logged('reloaded (SIGHUP)');
    const logs = gateway!.logs();
    expect(logs).not.toContain('reloaded (watcher)');
    expect(logs).not.toMatch(/watching .* for changes/);

    const response = await generate({ mode: 'after-hup', prompt: 'x', num_inference_steps: 2 });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('after-hup');
  });

  it('refuses a path that leaves model_root, naming the field', async () => {
    await start({ MODES_WATCH: '0' });
    const document = readModes();
    document.modes['sd15-fast'].model = '../../etc/passwd';
    writeModes(document);
    const response = await reload();
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorReply;
    expect(body.problems).toEqual([
      `modes.sd15-fast.model: '../../etc/passwd' must be inside model_root (${document.model_root})`,
    ]);
    expect((await listModes()).modes['sd15-fast'].model).not.toContain('passwd');
  });

  it('answers a removed mode with 404 after a reload, and reports the new list', async () => {
    await start({ MODES_WATCH: '0' });
    const before = await generate({ mode: 'sd15-detail', prompt: 'x', num_inference_steps: 2 });
    expect(before.status).toBe(200);

    const document = readModes();
    delete document.modes['sd15-detail'];
    writeModes(document);
    const response = await reload();
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      status: 'reloaded',
      modes_count: 3,
      modes: ['sdxl-general', 'sdxl-portrait', 'sd15-fast'],
      default_mode: 'sdxl-general',
      warnings: [],
    });

    const after = await generate({ mode: 'sd15-detail', prompt: 'x' });
    expect(after.status).toBe(404);
    expect(((await after.json()) as ErrorReply).message).toMatch(/^Mode 'sd15-detail' not found \(modes: /);
  });

  it('refuses at once a switch to a mode whose file is gone; one that fails in its turn shows in the status', async () => {
    await start({ MODES_WATCH: '0' });
    const document = readModes();
    const garbage = join(document.model_root, `e2e-garbage-${process.pid}.safetensors`);
    const gone = join(document.model_root, `e2e-gone-${process.pid}.safetensors`);
    writeFileSync(garbage, 'not a safetensors file');
    writeFileSync(gone, 'removed after the reload');
    const config = document.modes['sd15-fast'].config;
    try {
      document.modes.broken = { model: basename(garbage), config };
      document.modes.missing = { model: basename(gone), config };
      writeModes(document);
      expect((await reload()).status).toBe(200);
      rmSync(gone);

      const refused = await switchTo('missing');
      expect(refused.status).toBe(409);
      expect(await refused.json()).toEqual({
        error: 'model_file_missing',
        message: `Mode 'missing' cannot be loaded: file not found: ${gone}`,
        statusCode: 409,
      });

      // The file is there but cannot load: the switch is queued (the reply keys stay the spec's), then fails.
      const queued = await switchTo('broken');
      expect(queued.status).toBe(200);
      // The spec's keys, then ours: a switch is a job.
      expect(Object.keys((await queued.json()) as object)).toEqual(['status', 'from_mode', 'to_mode', 'message', 'id']);
      const failed = await waitFor(async () => (await modelsStatus()).last_switch_error, {
        what: 'the failed switch to show in GET /api/models/status',
        context: () => gateway!.logs(),
      });
      expect(failed).toEqual({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        mode: 'broken',
        error: 'model_load_failed',
        message: expect.stringContaining("Mode 'broken' could not be loaded") as unknown,
      });

      // A switch that succeeds clears it.
      expect((await switchTo('sd15-fast')).status).toBe(200);
      await waitFor(
        async () => {
          const status = await modelsStatus();
          return status.current_mode === 'sd15-fast' && status.last_switch_error === null;
        },
        { what: 'the good switch to clear last_switch_error', context: () => gateway!.logs() },
      );
    } finally {
      rmSync(garbage, { force: true });
      rmSync(gone, { force: true });
    }
  });

  it("names a typo'd model file at reload, in status and on every route with 409; copying it in needs no reload", async () => {
    await start({ MODES_WATCH: '0' });
    const document = readModes();
    const fast = document.modes['sd15-fast'];
    const typo = join(document.model_root, `e2e-typo-${process.pid}.safetensors`);
    try {
      document.modes.typo = { model: basename(typo), config: fast.config };
      writeModes(document);
      const warning = { path: 'modes.typo.model', message: `file not found: ${typo}` };
      const reloaded = await reload();
      expect(reloaded.status).toBe(200);
      expect(await reloaded.json()).toMatchObject({ status: 'reloaded', warnings: [warning] });
      await gateway!.logged(`modes.typo.model: file not found: ${typo}`);
      expect(
        ((await (await fetch(`${gateway!.url}/api/models/status`)).json()) as Record<string, unknown>).reload_warnings,
      ).toEqual([warning]);
      // Still listed: the file may be copied in later.
      expect(Object.keys((await listModes()).modes)).toContain('typo');

      const message = `Mode 'typo' cannot be loaded: file not found: ${typo}`;
      const post = (path: string, body: object): Promise<Response> =>
        fetch(`${gateway!.url}${path}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
      for (const [path, body] of [
        ['/generate', { mode: 'typo', prompt: 'x', num_inference_steps: 1 }],
        ['/api/jobs', { mode: 'typo', prompt: 'x', num_inference_steps: 1 }],
        ['/v1/images/generations', { model: 'typo', prompt: 'x', steps: 1 }],
        ['/api/modes/switch', { mode: 'typo' }],
      ] as const) {
        const refused = await post(path, body);
        expect({ path, status: refused.status }).toEqual({ path, status: 409 });
        expect(JSON.stringify(await refused.json())).toContain(message);
      }

      // Copied in: served at once, no reload; status no longer names it.
      copyFileSync(join(document.model_root, fast.model), typo);
      const generated = await generate({ mode: 'typo', prompt: 'a lighthouse', num_inference_steps: 1 });
      expect(generated.status).toBe(200);
      expect(generated.headers.get('x-mode')).toBe('typo');
      expect(
        ((await (await fetch(`${gateway!.url}/api/models/status`)).json()) as Record<string, unknown>).reload_warnings,
      ).toEqual([]);
    } finally {
      rmSync(typo, { force: true });
    }
  });

  it('says on /ready why the start failed, and is ready once the fixed file is reloaded', async () => {
    const document = readModes();
    const general = document.modes['sdxl-general'];
    writeModes({
      ...document,
      modes: { ...document.modes, 'sdxl-general': { ...general, model: 'missing.safetensors' } },
    });
    const started = await start({}, '/health');
    await started.logged('startup failed, /ready stays 503 until a mode loads');
    const notReady = await fetch(`${started.url}/ready`);
    expect(notReady.status).toBe(503);
    const { message } = (await notReady.json()) as ErrorReply;
    expect(message).toMatch(/^Not ready: the start failed \(Mode 'sdxl-general' cannot be loaded: file not found: /);
    expect(message).toContain("ready once a mode loads: a reload of modes.yaml tries 'sdxl-general' again");

    // The user puts the right path back: the watcher's reload loads the default mode again, without a restart.
    writeModes(document);
    await waitFor(async () => (await fetch(`${started.url}/ready`)).status === 200, {
      what: '/ready to answer 200 after the fixed file was reloaded',
      context: () => started.logs(),
    });
    expect(await (await fetch(`${started.url}/ready`)).json()).toEqual({
      status: 'ready',
      current_mode: 'sdxl-general',
    });
  });

  it('answers 409 on the legacy MODEL_ROOT/MODEL setup', async () => {
    const document = readModes();
    rmSync(modesFile);
    await start({ MODEL_ROOT: document.model_root, MODEL: document.modes['sd15-fast'].model }, '/health');
    const response = await reload();
    expect(response.status).toBe(409);
    const body = (await response.json()) as ErrorReply;
    expect(body.error).toBe('modes_disabled');
    expect(body.message).toContain('needs a modes.yaml');
    expect(gateway!.logs()).toContain('deprecated MODEL_ROOT/MODEL');
  });

  it('exits non-zero at start, naming the path, when there is neither a modes file nor MODEL_ROOT/MODEL', async () => {
    const missing = join(folder, 'nowhere', 'modes.yaml');
    const env: NodeJS.ProcessEnv = { ...process.env, MODES_FILE: missing, SIDECAR_ADDR: modelHost.addr, PORT: '0' };
    for (const name of ['MODEL_ROOT', 'MODEL', 'LORA_ROOT']) delete env[name];
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'apps', 'gateway', 'main.js')], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // 'close', not 'exit': 'exit' can come while the line read below is still in the pipe.
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    expect(code).not.toBe(0);
    expect(output).toContain(`modes.yaml not found: ${missing}`);
  });
});

function readModesFrom(path: string): ModesYaml {
  return load(readFileSync(path, 'utf8')) as ModesYaml;
}
