// Mode-switch latency through the whole stack: HTTP -> gateway queue -> gRPC -> model host.
// Runs the built gateway (which starts its own model host) on the tiny demo models, so on a
// CPU machine it measures the server's own overhead per request kind, not GPU speed; point
// MODES_FILE at real models (and pass their mode names) to measure those.
//
//   npm run build && node bench/switch-latency.mjs [ROUNDS]
//   MODES_FILE=modes.yaml MODE_A=sdxl-general MODE_B=sd15-fast MODE_LORA=sdxl-portrait node bench/switch-latency.mjs
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

import { gatewayUrlIn } from './lib.mjs';

const rounds = Number(process.argv[2] ?? 10);
const modeA = process.env.MODE_A ?? 'sdxl-general';
const modeB = process.env.MODE_B ?? 'sd15-fast';
const modeLora = process.env.MODE_LORA ?? 'sdxl-portrait';

let modesFile = process.env.MODES_FILE;
if (!modesFile) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-demo-'));
  execFileSync('sidecar/.venv/bin/python', ['-m', 'modelhost', 'make-demo-models', dir], { stdio: 'ignore' });
  modesFile = join(dir, 'modes.yaml');
}

const started = performance.now();
// PORT=0: the OS picks the port, the start line names it.
const gateway = spawn(process.execPath, ['dist/apps/gateway/main.js'], {
  env: { ...process.env, PORT: '0', MODES_FILE: modesFile, HF_HUB_OFFLINE: '1', NO_COLOR: '1' },
  stdio: ['ignore', 'pipe', 'ignore'],
});
let log = '';
gateway.stdout.on('data', (chunk) => (log += chunk));
let url;

async function ready() {
  for (;;) {
    url ??= gatewayUrlIn(log);
    if (url === undefined) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function generate(mode, seed) {
  const t = performance.now();
  const response = await fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ mode, prompt: 'a beautiful landscape', seed }),
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`${mode}: HTTP ${response.status}`);
  return performance.now() - t;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
const row = (name, ms) => rows.push([name, ms.toFixed(0)]);

try {
  await ready();
  row('start to ready (model host boot + default mode load)', performance.now() - started);
  row(`first request, mode ${modeB} (cold load from disk)`, await generate(modeB, 1));
  row(`first request, mode ${modeLora} (LoRA on a resident base)`, await generate(modeLora, 1));

  const same = [];
  for (let i = 0; i < rounds; i++) same.push(await generate(modeB, i));
  row(`same mode again, median of ${rounds}`, median(same));

  const alternating = [];
  for (let i = 0; i < rounds; i++) alternating.push(await generate(i % 2 ? modeA : modeB, i));
  row(`alternating ${modeA} <-> ${modeB} (both resident), median of ${rounds}`, median(alternating));

  const lora = [];
  for (let i = 0; i < rounds; i++) lora.push(await generate(i % 2 ? modeA : modeLora, i));
  row(`alternating ${modeA} <-> ${modeLora} (adapter swap), median of ${rounds}`, median(lora));
} finally {
  gateway.kill('SIGTERM');
}

console.log(`machine: ${cpus().length} x ${cpus()[0].model}, node ${process.version}`);
console.log('| request | ms |\n| --- | ---: |');
for (const [name, ms] of rows) console.log(`| ${name} | ${ms} |`);
