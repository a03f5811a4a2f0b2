// Hot-reload latency of modes.yaml: from the write of the file to the new mode listed by GET /api/modes.
// The built gateway watches the file (MODES_WATCH=1, the default); no model host is started (SIDECAR_ADDR names
// a socket nobody serves), so what is measured is the watcher, its debounce, parsing and validation, and the
// swap — nothing of the model host. 50 edits, each adding one mode; p50 and max; JSON to bench/results/.
//
//   npm run build && node bench/reload-latency.mjs [EDITS] [--json FILE]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { commit, gatewayUrlIn, percentile, round } from './lib.mjs';

const edits = Number(process.argv[2] ?? 50);
const jsonFlag = process.argv.indexOf('--json');
const dir = mkdtempSync(join(tmpdir(), 'bench-reload-'));
const modesFile = join(dir, 'modes.yaml');
// The loader checks paths, not weights: an empty file stands in for a model.
writeFileSync(join(dir, 'model.safetensors'), '');
const modesText = (count) =>
  `model_root: ${dir}\ndefault_mode: base\nmodes:\n  base:\n    model: model.safetensors\n` +
  Array.from({ length: count }, (_, i) => `  bench-${i}:\n    model: model.safetensors\n`).join('');
writeFileSync(modesFile, modesText(0));

const gateway = spawn(process.execPath, ['dist/apps/gateway/main.js'], {
  env: {
    ...process.env,
    PORT: '0',
    MODES_FILE: modesFile,
    MODES_WATCH: '1',
    SIDECAR_ADDR: `unix:${join(dir, 'nobody.sock')}`,
    NO_COLOR: '1',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let log = '';
gateway.stdout.on('data', (chunk) => (log += chunk));
gateway.stderr.on('data', (chunk) => (log += chunk));

async function until(condition, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

try {
  const url = await until(() => gatewayUrlIn(log), 'the start line');
  await until(async () => (await fetch(`${url}/health`).catch(() => undefined))?.status === 200, '/health');
  await until(() => log.includes('for changes to modes.yaml'), 'the watcher');
  const samples = [];
  for (let i = 0; i < edits; i += 1) {
    const written = performance.now();
    writeFileSync(modesFile, modesText(i + 1));
    await until(async () => {
      const modes = await (await fetch(`${url}/api/modes`)).json();
      return `bench-${i}` in modes.modes;
    }, `bench-${i}`);
    samples.push(performance.now() - written);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const result = {
    benchmark: 'reload-latency',
    what: 'write of modes.yaml -> new mode listed by GET /api/modes (watcher on, no model host)',
    edits,
    p50_ms: round(percentile(sorted, 50)),
    p90_ms: round(percentile(sorted, 90)),
    max_ms: round(sorted.at(-1)),
    samples_ms: samples.map(round),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
    date: new Date().toISOString(),
    commit: commit(),
  };
  const out =
    jsonFlag >= 0
      ? process.argv[jsonFlag + 1]
      : join('bench/results', `reload-latency-${result.date.slice(0, 10)}.json`);
  mkdirSync(dirname(resolve(out)), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify({ ...result, samples_ms: undefined }, null, 2));
  console.log(`written to ${out}`);
} finally {
  gateway.kill('SIGTERM');
  await new Promise((resolve) => gateway.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
}
