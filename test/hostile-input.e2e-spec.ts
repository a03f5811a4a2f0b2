import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir, ROOT } from './support/demo-models';
import { Gateway, LISTENING, pngSize, startGateway } from './support/gateway-process';
import { ModelHost, startModelHost } from './support/model-host-process';

interface ModesYaml {
  model_root: string;
  lora_root?: string;
  default_mode: string;
  modes: Record<string, Record<string, unknown>>;
}

interface ErrorReply {
  error: string;
  message: string;
  statusCode: number;
  problems?: string[];
}

/** How long a condition may take to come true before the test fails saying what never happened. */
const DEADLINE_MS = 60_000;

/** Nine lines of nested anchors (342 bytes): 9^9 strings once anything copies the parsed document. */
function billionLaughs(): string {
  let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let previous = 'a';
  for (const name of 'bcdefghi') {
    text += `${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]\n`;
    previous = name;
  }
  return text;
}

/**
 * Hostile and careless input against the built gateway and a real model host on the demo models: each is refused
 * with a 4xx that says why, and the server answers throughout.
 */
describe('hostile input', () => {
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
    folder = mkdtempSync(join(tmpdir(), 'e2e-hostile-'));
    modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, readFileSync(join(demoDir(), 'modes.yaml')));
  });

  afterEach(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
    rmSync(folder, { recursive: true, force: true });
  });

  async function start(env: Record<string, string> = {}): Promise<Gateway> {
    gateway = await startGateway({ MODES_FILE: modesFile, SIDECAR_ADDR: modelHost.addr, MODES_WATCH: '0', ...env });
    return gateway;
  }

  function readModes(): ModesYaml {
    return load(readFileSync(modesFile, 'utf8')) as ModesYaml;
  }

  async function post(path: string, body?: string, type = 'application/json'): Promise<Response> {
    return fetch(`${gateway!.url}${path}`, {
      method: 'POST',
      ...(body !== undefined && { headers: { 'Content-Type': type }, body }),
    });
  }

  async function listModes(): Promise<unknown> {
    const response = await fetch(`${gateway!.url}/api/modes`);
    expect(response.status).toBe(200);
    return response.json();
  }

  /**
   * Polls /health back to back from before `work` is sent until it has answered, so that at least one poll is
   * in flight while the server handles it: a handler that blocks the event loop holds every poll behind it, and
   * one that takes the process down fails them.
   */
  async function healthWhile<T>(work: () => Promise<T>): Promise<{ result: T; health: number[] }> {
    const health: number[] = [];
    let done = false;
    const poller = (async () => {
      do {
        const response = await fetch(`${gateway!.url}/health`);
        health.push(response.status);
        await response.text();
      } while (!done);
    })();
    const result = await work().finally(() => {
      done = true;
    });
    await poller;
    return { result, health };
  }

  describe('the modes file', () => {
    it('refuses a billion-laughs file with 400 naming MODES_FILE_MAX_NODES, answering /health throughout', async () => {
      await start();
      const before = await listModes();
      const bomb = billionLaughs();
      expect(bomb.length).toBe(342);
      writeFileSync(modesFile, bomb);

      const { result, health } = await healthWhile(async () => {
        const response = await post('/api/modes/reload');
        return { status: response.status, body: (await response.json()) as ErrorReply };
      });
      expect(result.status).toBe(400);
      expect(result.body.error).toBe('invalid_modes_file');
      expect(result.body.problems).toEqual([
        'the file holds more than 100000 values (MODES_FILE_MAX_NODES), each use of a YAML alias (*name) counted again',
      ]);
      expect(health.length).toBeGreaterThan(0);
      expect(health.every((status) => status === 200)).toBe(true);

      // The old modes keep serving.
      expect(await listModes()).toEqual(before);
      const generated = await post('/generate', JSON.stringify({ prompt: 'x', num_inference_steps: 1 }));
      expect(generated.status).toBe(200);
    });

    it('refuses a file over MODES_FILE_MAX_BYTES by its size, answering /health throughout', async () => {
      await start({ MODES_FILE_MAX_BYTES: '4096' });
      const before = await listModes();
      const document = readModes();
      document.modes['sd15-fast'].metadata = { padding: 'x'.repeat(8192) };
      writeFileSync(modesFile, dump(document));

      const { result, health } = await healthWhile(async () => {
        const response = await post('/api/modes/reload');
        return { status: response.status, body: (await response.json()) as ErrorReply };
      });
      expect(result.status).toBe(400);
      expect(result.body.problems).toEqual([
        expect.stringMatching(/^the file is \d+ bytes, more than MODES_FILE_MAX_BYTES \(4096 bytes\)$/),
      ]);
      expect(health.length).toBeGreaterThan(0);
      expect(health.every((status) => status === 200)).toBe(true);
      expect(await listModes()).toEqual(before);
    });

    it('refuses a bomb the watcher sees, keeps serving, and reports it in /api/models/status', async () => {
      await start({ MODES_WATCH: '1' });
      const before = await listModes();
      const { health } = await healthWhile(async () => {
        writeFileSync(modesFile, billionLaughs());
        const deadline = Date.now() + DEADLINE_MS;
        for (;;) {
          const status = (await (await fetch(`${gateway!.url}/api/models/status`)).json()) as {
            last_reload_error: { problems: string[] } | null;
          };
          if (status.last_reload_error?.problems[0]?.includes('MODES_FILE_MAX_NODES')) return;
          if (Date.now() > deadline) throw new Error(`the watcher never reported the bomb:\n${gateway!.logs()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      });
      expect(health.every((status) => status === 200)).toBe(true);
      expect(await listModes()).toEqual(before);
      // The status is set as the line is logged, but the line reaches us through a pipe: wait for it.
      await gateway!.logged('reload (watcher) refused');
    });

    it('refuses a mode named __proto__ with its YAML path, and serves one named constructor', async () => {
      await start();
      const document = readModes();
      const proto = `model_root: ${document.model_root}\nlora_root: ${document.lora_root}\ndefault_mode: sdxl-general\n`;
      const sdxl = `    model: ${String(document.modes['sdxl-general'].model)}\n    config: ${String(document.modes['sdxl-general'].config)}\n`;
      writeFileSync(modesFile, `${proto}modes:\n  sdxl-general:\n${sdxl}  __proto__:\n${sdxl}`);
      const refused = await post('/api/modes/reload');
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as ErrorReply).problems).toEqual([
        "modes.__proto__: '__proto__' cannot be a mode name; mode names may only use letters, digits, '.', '_' and '-', and start with a letter or digit",
      ]);

      writeFileSync(modesFile, `${proto}modes:\n  sdxl-general:\n${sdxl}  constructor:\n${sdxl}`);
      const reloaded = await post('/api/modes/reload');
      expect(reloaded.status).toBe(200);
      expect(((await reloaded.json()) as { modes: string[] }).modes).toEqual(['sdxl-general', 'constructor']);
      const response = await post(
        '/generate',
        JSON.stringify({ prompt: 'x', mode: 'constructor', num_inference_steps: 1 }),
      );
      expect(response.status).toBe(200);
      expect(response.headers.get('x-mode')).toBe('constructor');
    });
  });

  describe('symbolic links under model_root', () => {
    let root: string;

    beforeEach(() => {
      // A model root of its own holding a real copy of the tiny SD1.5 model and its config folder.
      root = join(folder, 'models');
      mkdirSync(root);
      cpSync(join(demoDir(), 'tiny-sd15.safetensors'), join(root, 'tiny-sd15.safetensors'));
      cpSync(join(demoDir(), 'tiny-sd15.config'), join(root, 'tiny-sd15.config'), { recursive: true });
    });

    function writeModesWith(model: string): void {
      const modes: ModesYaml = {
        model_root: root,
        default_mode: 'sd15',
        modes: { sd15: { model: 'tiny-sd15.safetensors', config: 'tiny-sd15.config' } },
      };
      modes.modes.linked = { model, config: 'tiny-sd15.config' };
      writeFileSync(modesFile, dump(modes));
    }

    it('refuses a link that leads out of model_root, naming the YAML path; the old modes keep serving', async () => {
      writeModesWith('tiny-sd15.safetensors');
      await start();
      const before = await listModes();
      // A real, loadable checkpoint outside the root: what the link would have opened.
      symlinkSync(join(demoDir(), 'tiny-sd15.safetensors'), join(root, 'escape.safetensors'));
      writeModesWith('escape.safetensors');
      const response = await post('/api/modes/reload');
      expect(response.status).toBe(400);
      const body = (await response.json()) as ErrorReply;
      expect(body.problems).toEqual([
        expect.stringMatching(/^modes\.linked\.model: 'escape\.safetensors' resolves outside model_root: it leads to /),
      ]);
      expect(await listModes()).toEqual(before);
      const generated = await post(
        '/generate',
        JSON.stringify({ prompt: 'x', mode: 'linked', size: '32x32', num_inference_steps: 1 }),
      );
      expect(generated.status).toBe(200);
      // The running 'linked' is the one from before: the file inside the root.
      expect(((await listModes()) as { modes: Record<string, { model: string }> }).modes.linked.model).toBe(
        'tiny-sd15.safetensors',
      );
    });

    it('serves a mode through a link that stays inside model_root', async () => {
      symlinkSync('tiny-sd15.safetensors', join(root, 'alias.safetensors'));
      writeModesWith('alias.safetensors');
      await start();
      const response = await post(
        '/generate',
        JSON.stringify({ prompt: 'x', mode: 'linked', size: '32x32', num_inference_steps: 1 }),
      );
      expect(response.status).toBe(200);
      expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 32, height: 32 });
    });
  });

  describe('request bodies', () => {
    beforeEach(async () => {
      await start();
    });

    it('answers 415 to bodies a browser sends across sites without asking, and to a body on reload', async () => {
      const cases: [string, string, string][] = [
        ['/generate', 'prompt=x', 'application/x-www-form-urlencoded'],
        ['/generate', '{"prompt":"x"}', 'text/plain'],
        [
          '/generate',
          '--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n',
          'multipart/form-data; boundary=b',
        ],
        ['/api/modes/switch', 'mode=sd15-fast', 'application/x-www-form-urlencoded'],
        ['/api/modes/reload', 'x', 'text/plain'],
        ['/api/modes/reload', '{}', 'application/json'],
      ];
      for (const [path, body, type] of cases) {
        const response = await post(path, body, type);
        expect([path, type, response.status]).toEqual([path, type, 415]);
        expect(((await response.json()) as ErrorReply).error).toBe('unsupported_media_type');
      }
      expect((await post('/api/modes/reload')).status).toBe(200);
    });

    it.each([
      [
        '3,000 arrays nested in mode',
        `{"prompt":"x","mode":${'['.repeat(3000)}${']'.repeat(3000)}}`,
        /^mode(\[0\]){31}: nested deeper than 32 levels$/,
      ],
      [
        'a lone surrogate in prompt',
        '{"prompt":"\\ud800"}',
        /^prompt: must be valid Unicode text \(it holds a lone UTF-16 surrogate\)$/,
      ],
      ['mode null', '{"prompt":"x","mode":null}', /^mode: must be a string$/],
      ['size " 64x64"', '{"prompt":"x","size":" 64x64"}', /^size: must be WIDTHxHEIGHT/],
      ['size 64X64', '{"prompt":"x","size":"64X64"}', /^size: must be WIDTHxHEIGHT/],
      ['a __proto__ key', '{"prompt":"x","__proto__":{"mode":"sd15-fast"}}', /^__proto__: unknown field$/],
    ])('answers 400 naming the field to %s', async (_label, body, message) => {
      const { result, health } = await healthWhile(async () => {
        const response = await post('/generate', body);
        return { status: response.status, body: (await response.json()) as ErrorReply };
      });
      expect(result.status).toBe(400);
      expect(result.body.message).toMatch(message);
      expect(result.body.message).not.toMatch(/python|protobuf|Traceback|\.py\b|\.js:\d+/i);
      expect(health.every((status) => status === 200)).toBe(true);
    });
  });

  describe('HOST', () => {
    /** Starts the built gateway on PORT=0 and reads the address it bound from its start log. */
    async function listening(
      env: Record<string, string>,
    ): Promise<{ url: string; stop: () => Promise<number | null> }> {
      const child = spawn(process.execPath, [join(ROOT, 'dist', 'apps', 'gateway', 'main.js')], {
        cwd: ROOT,
        env: {
          ...process.env,
          HF_HUB_OFFLINE: '1',
          MODES_FILE: modesFile,
          SIDECAR_ADDR: modelHost.addr,
          PORT: '0',
          // The log line read below, without colour codes around the address.
          NO_COLOR: '1',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start line:\n${output}`)), DEADLINE_MS);
        const read = (chunk: Buffer): void => {
          output += chunk.toString();
          const match = LISTENING.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        };
        child.stdout.on('data', read);
        child.stderr.on('data', read);
        child.once('exit', () => reject(new Error(`gateway exited:\n${output}`)));
      });
      return {
        url,
        stop: async () => {
          child.kill('SIGTERM');
          return exited;
        },
      };
    }

    function externalAddress(): string {
      const address = Object.values(networkInterfaces())
        .flat()
        .find((info) => info?.family === 'IPv4' && !info.internal)?.address;
      if (!address) throw new Error('this test needs a non-loopback IPv4 interface to tell the bound address apart');
      return address;
    }

    async function reachable(url: string): Promise<boolean> {
      try {
        return (await fetch(`${url}/health`)).status === 200;
      } catch {
        return false;
      }
    }

    it('binds 127.0.0.1 by default, logs the real port of PORT=0, and is not reachable from another interface', async () => {
      const gateway = await listening({});
      try {
        const { port } = new URL(gateway.url);
        expect(gateway.url).toBe(`http://127.0.0.1:${port}`);
        expect(Number(port)).toBeGreaterThan(0);
        expect(await reachable(gateway.url)).toBe(true);
        expect(await reachable(`http://${externalAddress()}:${port}`)).toBe(false);
      } finally {
        await gateway.stop();
      }
    });

    it('binds the address HOST names (0.0.0.0, as docker-compose sets it) and logs it', async () => {
      const gateway = await listening({ HOST: '0.0.0.0' });
      try {
        const { port } = new URL(gateway.url);
        expect(gateway.url).toBe(`http://0.0.0.0:${port}`);
        expect(await reachable(`http://${externalAddress()}:${port}`)).toBe(true);
        expect(await reachable(`http://127.0.0.1:${port}`)).toBe(true);
      } finally {
        await gateway.stop();
      }
    });
  });
});
