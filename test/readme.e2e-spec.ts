import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir, ROOT } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';

/** The address the README's commands name: `./runner.sh` serves the demo there. */
const README_ADDRESS = 'http://localhost:4200';
/** What marks a shell block that runs as written against the demo models. */
const MARKER = '<!-- runnable -->';
const BLOCK_TIMEOUT_MS = 30_000;
/**
 * What every block runs under: the first failing command fails the block, a pipe fails with its first failing
 * command, and curl fails on an HTTP error status (printing the body), as `curl -f` would.
 */
const PRELUDE = ['set -eo pipefail', 'curl() { command curl --fail-with-body --silent --show-error "$@"; }', ''].join(
  '\n',
);

interface Block {
  /** The line of README.md its code starts on. */
  readonly line: number;
  readonly code: string;
}

/**
 * The README's shell blocks marked runnable (the marker alone on its line), in order; throws when a marker is not
 * followed by a bash block.
 */
function runnableBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const marker = new RegExp(`^${MARKER}$`, 'gm');
  for (let found = marker.exec(markdown); found; found = marker.exec(markdown)) {
    const from = found.index;
    const after = from + MARKER.length;
    const fence = /^\s*\n```bash\n([\s\S]*?)\n```/.exec(markdown.slice(after));
    const line = markdown.slice(0, from).split('\n').length;
    if (!fence?.[1]) throw new Error(`README.md line ${line}: ${MARKER} is not followed by a \`\`\`bash block`);
    const codeStart = after + fence[0].indexOf('```bash\n') + '```bash\n'.length;
    blocks.push({ line: markdown.slice(0, codeStart).split('\n').length, code: fence[1] });
  }
  return blocks;
}

/** Runs a script with bash in `cwd`; resolves with its exit code and output (the event loop stays free for logs). */
function runBash(script: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun) => {
    const child = spawn('bash', ['-c', script], {
      cwd,
      // An API_KEY of the shell running the tests must not leak into the blocks that send one.
      env: { ...process.env, API_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: BLOCK_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('close', (code, signal) => resolveRun({ code: code ?? (signal ? 128 : null), output }));
  });
}

const blocks = runnableBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));

describe("the README's runnable shell blocks, as written, against the demo models", () => {
  let gateway: Gateway;
  let work: string;

  beforeAll(async () => {
    for (const tool of ['bash', 'curl', 'jq']) {
      if (spawnSync(tool, ['--version']).status !== 0) throw new Error(`the README's commands need ${tool} on PATH`);
    }
    work = mkdtempSync(join(tmpdir(), 'readme-'));
    // As `./runner.sh` serves them on a fresh clone: the demo modes, open (no API_KEY).
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      API_KEY: '',
      ADMIN_API_KEY: '',
    });
  });

  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
    expect(await gateway?.stop()).toBe(0);
  });

  it('marks the blocks a user runs first: generate, jobs, modes, status, metrics, OpenAI', () => {
    const all = blocks.map((block) => block.code).join('\n');
    for (const path of ['/generate', '/api/jobs', '/api/modes', '/api/models/status', '/metrics', '/v1/images']) {
      expect(all).toContain(`${README_ADDRESS}${path}`);
    }
  });

  it.each(blocks.map((block) => [block.line, block.code.split('\n')[0], block] as const))(
    'README.md line %i (%s) exits 0',
    async (_line, _first, block) => {
      // Every block talks to the server, so every block must go to the test's gateway and nowhere else.
      expect(block.code).toContain(README_ADDRESS);
      const script = PRELUDE + block.code.split(README_ADDRESS).join(gateway.url);
      const { code, output } = await runBash(script, work);
      if (code !== 0) {
        throw new Error(`README.md line ${block.line}: exited ${code}\n${block.code}\n--- output ---\n${output}`);
      }
    },
    BLOCK_TIMEOUT_MS + 5_000,
  );
});
