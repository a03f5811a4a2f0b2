import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir, ROOT, SIDECAR_PYTHON } from './support/demo-models';
import { pngSize } from './support/gateway-process';

/** The address docs/DEVELOPMENT.md's lines name; the test's model host listens elsewhere. */
const README_ADDRESS = '127.0.0.1:50051';
const SERVING_DEADLINE_MS = 180_000;
/** The documented lines send $MODEL_HOST_TOKEN: the model host here requires it, as one on TCP should. */
const TOKEN = 'e2e-grpcurl-token-0123456789abcdef';

/** grpcurl on PATH, else where `go install` puts it; undefined when neither has it. */
function findGrpcurl(): string | undefined {
  if (spawnSync('grpcurl', ['-version']).status === 0) return 'grpcurl';
  if (spawnSync('go', ['version']).status !== 0) return undefined;
  const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
  const installed = join(gopath, 'bin', 'grpcurl');
  return existsSync(installed) ? installed : undefined;
}

const hasGo = spawnSync('go', ['version']).status === 0;
const grpcurl = findGrpcurl();
if (!hasGo && !grpcurl) {
  console.warn('SKIPPED grpcurl e2e test: neither grpcurl nor Go (to `go install` it) is on PATH');
}

/** The `grpcurl` lines of the grpcurl block of docs/DEVELOPMENT.md, in order. */
function readmeLines(): string[] {
  const readme = readFileSync(join(ROOT, 'docs', 'DEVELOPMENT.md'), 'utf8');
  const block = /Debug it with grpcurl[\s\S]*?```bash\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error("docs/DEVELOPMENT.md has no grpcurl block after 'Debug it with grpcurl'");
  return block.split('\n').filter((line) => line.startsWith('grpcurl '));
}

/** grpcurl prints each message of a stream as its own top-level JSON object. */
function messages(output: string): unknown[] {
  return JSON.parse(`[${output.trim().replace(/\n}\n{/g, '\n},\n{')}]`) as unknown[];
}

/** The grpcurl lines of docs/DEVELOPMENT.md, run by a real grpcurl binary against a real model host on the demo models. */
(hasGo || grpcurl ? describe : describe.skip)('grpcurl, as docs/DEVELOPMENT.md shows it', () => {
  let work: string;
  let socket: string;
  let host: ChildProcess;
  let hostOutput = '';
  const outputs = new Map<string, string>();

  /** Runs one of its lines as bash would, from a folder whose .demo is the demo models, against our model host. */
  function run(line: string): string {
    if (!grpcurl) throw new Error('Go is here but grpcurl is not: ./runner.sh test installs it (go install)');
    const command = `"$GRPCURL"${line.slice('grpcurl'.length).split(README_ADDRESS).join(`-unix ${socket}`)}`;
    const result = spawnSync('bash', ['-c', command], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, GRPCURL: grpcurl, MODEL_HOST_TOKEN: TOKEN },
    });
    if (result.status !== 0) throw new Error(`${line}\nexited ${result.status}: ${result.stderr}\n${hostOutput}`);
    return result.stdout;
  }

  beforeAll(async () => {
    if (!grpcurl) throw new Error('Go is here but grpcurl is not: ./runner.sh test installs it (go install)');
    work = realpathSync(mkdtempSync(join(tmpdir(), 'e2e-grpcurl-')));
    symlinkSync(demoDir(), join(work, '.demo'));
    // A unix socket in the test's own folder, not a TCP port found free: between the check and the model host's
    // bind (seconds of Python start), another process on the machine could take the port.
    socket = join(work, 'modelhost.sock');
    host = spawn(
      SIDECAR_PYTHON,
      [
        '-m',
        'modelhost',
        'serve',
        '--listen',
        `unix:${socket}`,
        '--model-root',
        join(work, '.demo'),
        '--exit-with-parent',
      ],
      {
        cwd: ROOT,
        env: { ...process.env, HF_HUB_OFFLINE: '1', MODEL_HOST_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    host.stdout?.on('data', (chunk: Buffer) => (hostOutput += chunk.toString()));
    host.stderr?.on('data', (chunk: Buffer) => (hostOutput += chunk.toString()));
    const health = readmeLines().find((line) => line.includes('grpc.health.v1.Health/Check'));
    if (!health) throw new Error('docs/DEVELOPMENT.md has no health check line');
    const deadline = Date.now() + SERVING_DEADLINE_MS;
    for (;;) {
      if (host.exitCode !== null) throw new Error(`model host exited ${host.exitCode}:\n${hostOutput}`);
      try {
        if ((messages(run(health))[0] as { status?: string }).status === 'SERVING') break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    for (const line of readmeLines()) outputs.set(line, run(line));
  }, SERVING_DEADLINE_MS + 120_000);

  afterAll(async () => {
    if (host && host.exitCode === null) {
      const exited = new Promise((resolve) => host.once('exit', resolve));
      host.kill('SIGTERM');
      await exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const outputOf = (fragment: string): string => {
    const entry = [...outputs].find(([line]) => line.includes(fragment));
    if (!entry) throw new Error(`docs/DEVELOPMENT.md has no grpcurl line with '${fragment}'`);
    return entry[1];
  };

  it('lists the services by reflection', () => {
    const services = outputOf(' list').trim().split('\n');
    expect(services).toEqual(expect.arrayContaining(['modelhost.v1.ModelHost', 'grpc.health.v1.Health']));
  });

  it('describes the ModelHost service', () => {
    const description = outputOf('describe modelhost.v1.ModelHost');
    for (const rpc of ['LoadModel', 'Generate', 'GetMemory', 'ListModels', 'SetModelRoots']) {
      expect(description).toContain(`rpc ${rpc}`);
    }
  });

  it('reports SERVING from the health service', () => {
    expect(messages(outputOf('grpc.health.v1.Health/Check'))).toEqual([{ status: 'SERVING' }]);
  });

  it('reads memory and the inventory of the model root', () => {
    const memory = messages(outputOf('/GetMemory'))[0] as { device?: string };
    expect(memory.device).toBe('cpu');
    const inventory = messages(outputOf('/ListModels'))[0] as { models: { path: string; architecture: string }[] };
    expect(inventory.models).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: join(realpathSync(demoDir()), 'tiny-sd15.safetensors'), architecture: 'sd15' }),
      ]),
    );
  });

  it('streams progress, then a PNG of the asked size, from Generate', () => {
    const events = messages(outputOf('/Generate')) as {
      progress?: { step?: number; total_steps?: number };
      image?: { png: string; width: number; height: number };
    }[];
    const progress = events.filter((event) => event.progress);
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.at(-1)?.progress?.total_steps).toBe(2);
    const image = events.at(-1)?.image;
    expect(image).toBeDefined();
    expect(pngSize(Buffer.from(image?.png ?? '', 'base64'))).toEqual({ width: 64, height: 64 });
  });

  it('runs a task that sees the model the doc loaded', () => {
    const reply = messages(outputOf('/RunTask'))[0] as { result_json: string };
    const summary = JSON.parse(reply.result_json) as { models: { key: string; architecture: string }[] };
    expect(summary.models).toEqual([expect.objectContaining({ key: 'demo', architecture: 'sd15' })]);
  });
});
