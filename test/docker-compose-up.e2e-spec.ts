import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir, ROOT } from './support/demo-models';
import { pngSize } from './support/gateway-process';
import { waitFor } from './support/wait-for';

/**
 * `docker-compose up` for real: both images built by `./runner.sh images` from docker/*.Dockerfile, the shipped
 * docker-compose.yml run on the demo models on the CPU. The test's compose file is the shipped one as
 * `docker-compose config` resolves it, changed only where a machine without a GPU or a spare port needs it: no GPU
 * reservation, the host's network (all traffic on loopback) on ports picked free, and no published ports.
 */

const COMPOSE = 'docker-compose';
// The first build downloads torch and its CUDA libraries and makes the stand-in bases: minutes, bounded here.
const BUILD_TIMEOUT_MS = 40 * 60_000;
const STACK_TIMEOUT_MS = 5 * 60_000;

function works(command: string, args: string[]): boolean {
  return spawnSync(command, args, { encoding: 'utf8', stdio: 'ignore' }).status === 0;
}

const missing = [
  works('docker', ['info']) ? '' : 'no Docker engine answers `docker info` (start dockerd)',
  works(COMPOSE, ['version']) ? '' : `no '${COMPOSE}' on PATH (apt-get install docker-compose)`,
].filter(Boolean);
if (missing.length > 0) {
  // .ci/run installs and starts Docker and sets REQUIRE_DOCKER=1: there, a missing engine fails the test.
  if (process.env.REQUIRE_DOCKER === '1') throw new Error(`REQUIRE_DOCKER=1 but ${missing.join('; ')}`);
  console.warn(`SKIPPED docker-compose up e2e: ${missing.join('; ')}`);
}

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  deploy?: unknown;
  ports?: unknown;
  network_mode?: string;
  depends_on?: unknown;
  stop_grace_period?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  networks?: unknown;
}
interface Inspected {
  Config: { User: string };
  HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null };
  State: { Status: string; ExitCode: number; Health?: { Status: string } };
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The containers run as other users than the files' owner (root here): everything they read must be readable. */
function openToAll(path: string): void {
  chmodSync(path, 0o755);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) openToAll(child);
    else chmodSync(child, 0o644);
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

(missing.length === 0 ? describe : describe.skip)('docker-compose up on the demo models (CPU)', () => {
  const project = `e2e-compose-${process.pid}`;
  const token = randomBytes(32).toString('hex');
  const apiKey = randomBytes(16).toString('hex');
  let work: string;
  let composeFile: string;
  let modesFile: string;
  let url: string;
  let containers: Record<'model-host' | 'gateway', string>;
  let shipped: ComposeFile;

  const compose = (...args: string[]): string => run(COMPOSE, ['-p', project, '-f', composeFile, ...args]);
  const inspect = (id: string): Inspected => (JSON.parse(run('docker', ['inspect', id])) as Inspected[])[0];
  const logs = (): string => {
    try {
      return compose('logs', '--no-color', '--tail', '200');
    } catch (error) {
      return String(error);
    }
  };

  function call(path: string, body?: unknown): Promise<Response> {
    return fetch(`${url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    // stdio inherited: the build's progress shows in the test log.
    const built = spawnSync(join(ROOT, 'runner.sh'), ['images'], { cwd: ROOT, stdio: 'inherit' });
    expect(built.status).toBe(0);

    work = mkdtempSync(join(tmpdir(), 'e2e-compose-'));
    const models = join(work, 'models');
    const config = join(work, 'config');
    cpSync(demoDir(), models, { recursive: true });
    mkdirSync(config);
    modesFile = join(config, 'modes.yaml');
    const modes = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as Record<string, unknown>;
    writeFileSync(modesFile, dump({ ...modes, model_root: '/models', lora_root: '/models/loras' }));
    openToAll(work);

    const [gatewayPort, modelHostPort] = [await freePort(), await freePort()];
    const env = { ...process.env, MODELS_DIR: models, MODES_DIR: config, MODEL_HOST_TOKEN: token, API_KEY: apiKey };
    shipped = load(
      run(COMPOSE, ['-f', join(ROOT, 'docker-compose.yml'), '--project-directory', ROOT, 'config'], env),
    ) as ComposeFile;
    const test = JSON.parse(JSON.stringify(shipped)) as ComposeFile;
    for (const service of Object.values(test.services)) {
      delete service.deploy;
      delete service.ports;
      service.network_mode = 'host';
    }
    delete test.networks;
    const modelHost = test.services['model-host'];
    const gateway = test.services.gateway;
    const listen = `127.0.0.1:${modelHostPort}`;
    modelHost.command = ['python', '-m', 'modelhost', 'serve', '--listen', listen];
    modelHost.healthcheck!.test = modelHost.healthcheck!.test.map((part) => part.replace('127.0.0.1:50051', listen));
    gateway.environment = {
      ...gateway.environment,
      HOST: '127.0.0.1',
      PORT: String(gatewayPort),
      SIDECAR_ADDR: listen,
    };
    gateway.healthcheck!.test = gateway.healthcheck!.test.map((part) =>
      part.replace('127.0.0.1:4200', `127.0.0.1:${gatewayPort}`),
    );
    // JSON is YAML: docker-compose reads it as it is.
    writeFileSync(join(work, 'docker-compose.test.yml'), JSON.stringify(test, null, 2));
    composeFile = join(work, 'docker-compose.test.yml');
    url = `http://127.0.0.1:${gatewayPort}`;

    compose('up', '-d', '--no-build');
    containers = {
      'model-host': compose('ps', '-q', 'model-host').trim(),
      gateway: compose('ps', '-q', 'gateway').trim(),
    };
    await waitFor(() => Object.values(containers).every((id) => inspect(id).State.Health?.Status === 'healthy'), {
      what: 'both containers healthy',
      timeoutMs: STACK_TIMEOUT_MS,
      intervalMs: 1000,
      context: logs,
    });
  }, BUILD_TIMEOUT_MS + STACK_TIMEOUT_MS);

  afterAll(() => {
    try {
      if (composeFile) compose('down', '--volumes', '--timeout', '5');
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });

  it('is ready, with the images docker-compose.yml names', async () => {
    expect((await call('/ready')).status).toBe(200);
    expect(
      run('docker', ['inspect', '--format', '{{.Config.Image}}', containers['model-host'], containers.gateway]),
    ).toBe(`${shipped.services['model-host'].image}\n${shipped.services.gateway.image}\n`);
  });

  it('runs both as their non-root users on read-only roots, without capabilities', () => {
    for (const [name, uid] of [
      ['model-host', '10001'],
      ['gateway', '1000'],
    ] as const) {
      const { Config, HostConfig } = inspect(containers[name]);
      expect({ name, user: Config.User, readOnly: HostConfig.ReadonlyRootfs, caps: HostConfig.CapDrop }).toEqual({
        name,
        user: `${uid}:${uid}`,
        readOnly: true,
        caps: ['ALL'],
      });
      expect(HostConfig.SecurityOpt).toContain('no-new-privileges:true');
      expect(run('docker', ['exec', containers[name], 'id', '-u']).trim()).toBe(uid);
      const write = spawnSync('docker', ['exec', containers[name], 'touch', '/written-by-the-test'], {
        encoding: 'utf8',
      });
      expect({ name, status: write.status, stderr: write.stderr }).toEqual({
        name,
        status: 1,
        stderr: expect.stringContaining('Read-only file system') as string,
      });
    }
  });

  it("answers POST /generate with a PNG and the spec's three headers", async () => {
    const response = await call('/generate', { prompt: 'a lighthouse', seed: 7 });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(response.headers.get('x-mode')).toBe('sdxl-general');
    expect(response.headers.get('x-seed')).toBe('7');
    expect(response.headers.get('x-superres')).toBe('false');
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });

  it('switches mode', async () => {
    const switched = await call('/api/modes/switch', { mode: 'sd15-fast' });
    expect(switched.status).toBe(200);
    await waitFor(
      async () =>
        ((await (await call('/api/models/status')).json()) as { current_mode: string }).current_mode === 'sd15-fast',
      { what: 'sd15-fast to be the current mode', context: logs },
    );
    const response = await call('/generate', { prompt: 'a lighthouse', mode: 'sd15-fast' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('sd15-fast');
  });

  it('picks up an edit of the mounted modes.yaml', async () => {
    const modes = load(readFileSync(modesFile, 'utf8')) as { modes: Record<string, Record<string, unknown>> };
    modes.modes['sd15-wide'] = { ...modes.modes['sd15-fast'], default_size: '96x64' };
    delete modes.modes['sd15-wide'].superres;
    writeFileSync(modesFile, dump(modes));
    await waitFor(async () => 'sd15-wide' in ((await (await call('/api/modes')).json()) as { modes: object }).modes, {
      what: 'the gateway to serve the edited modes.yaml',
      context: logs,
    });
    const response = await call('/generate', { prompt: 'a lighthouse', mode: 'sd15-wide' });
    expect(response.status).toBe(200);
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 96, height: 64 });
  });

  it('stops on `docker-compose stop`: the running job finishes, queued work is refused, both exit 0', async () => {
    // Seconds of work, well within the gateway's 30 s grace even on a busy machine: it runs while the stop begins.
    const mode = 'sdxl-general';
    const running = call('/generate', { prompt: 'the running one', mode, num_inference_steps: 16, size: '96x96' });
    const queued = call('/generate', { prompt: 'queued', mode });
    await waitFor(
      async () => ((await (await call('/api/models/status')).json()) as { queue_size: number }).queue_size === 1,
      { what: 'one job running and one queued', intervalMs: 20, context: logs },
    );
    const stopping = new Promise<number | null>((resolveStop) =>
      spawn(COMPOSE, ['-p', project, '-f', composeFile, 'stop'], { cwd: ROOT, stdio: 'ignore' }).once(
        'close',
        resolveStop,
      ),
    );
    expect((await queued).status).toBe(503);
    const finished = await running;
    const body = Buffer.from(await finished.arrayBuffer());
    expect({ status: finished.status, body: finished.ok ? '' : body.toString() }).toEqual({ status: 200, body: '' });
    expect(pngSize(body)).toEqual({ width: 96, height: 96 });
    expect(await stopping).toBe(0);
    for (const id of Object.values(containers)) {
      expect(inspect(id).State).toMatchObject({ Status: 'exited', ExitCode: 0 });
    }
  });
});
