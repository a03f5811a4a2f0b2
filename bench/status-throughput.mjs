// Throughput of the status endpoints against GET /health on the same server (autocannon, 50 connections).
// Status answers from the gateway's state (the registry's memory figures), so it should keep up with /health:
// the target is a ratio of at least 0.9.
//
//   npm run build && node bench/status-throughput.mjs [SECONDS]
//   node bench/status-throughput.mjs 10 --url http://127.0.0.1:4200   # a gateway that is already running
//   GATEWAY_MAIN=/other/checkout/dist/apps/gateway/main.js node bench/status-throughput.mjs   # another build
//   node bench/status-throughput.mjs 6 --json FILE   # also writes the figures as JSON (bench/run.mjs does)
//
// Without --url it starts the built gateway (which starts its own model host) on the tiny demo models and
// measures once it is ready and idle. Each path runs BENCH_ROUNDS times (3), interleaved (health, status,
// vram, health, ...), and its best run counts. On a machine shared with other work the CPU time the server
// spends per request (the gateway's, and the model host's under it; medians of the runs) is the steadier
// figure: "ratio by CPU" is /health's µs per request over the path's.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import autocannon from 'autocannon';

import { writeResult } from './lib.mjs';

const seconds = Number(process.argv[2] ?? 10);
const jsonFlag = process.argv.indexOf('--json');
const urlFlag = process.argv.indexOf('--url');
const port = Number(process.env.BENCH_PORT ?? 4392);
const url = urlFlag >= 0 ? process.argv[urlFlag + 1] : `http://127.0.0.1:${port}`;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PATHS = ['/health', '/api/models/status', '/api/vram'];

let gateway;
if (urlFlag < 0) {
  let modesFile = process.env.MODES_FILE;
  if (!modesFile) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-demo-'));
    execFileSync('sidecar/.venv/bin/python', ['-m', 'modelhost', 'make-demo-models', dir], { stdio: 'ignore' });
    modesFile = join(dir, 'modes.yaml');
  }
  gateway = spawn(process.execPath, [resolve(process.env.GATEWAY_MAIN ?? 'dist/apps/gateway/main.js')], {
    env: { ...process.env, PORT: String(port), MODES_FILE: modesFile, HF_HUB_OFFLINE: '1' },
    stdio: 'ignore',
  });
}

async function ready() {
  for (let i = 0; i < 3000; i += 1) {
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never became ready`);
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
function ticks(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return { ppid: Number(fields[1]), cpu: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (ms, at 100 ticks/s) used so far by the gateway itself and by the processes under it (the model host).
 * On a machine shared with other work, CPU per request is a steadier figure than requests per second.
 */
function serverCpuMs() {
  if (!gateway) return undefined;
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = ticks(name);
    if (stat) all.set(Number(name), stat);
  }
  let modelHost = 0;
  for (const stat of all.values()) {
    for (let at = stat.ppid; at > 1; at = all.get(at)?.ppid ?? 0) {
      if (at === gateway.pid) {
        modelHost += stat.cpu;
        break;
      }
    }
  }
  return { gateway: (all.get(gateway.pid)?.cpu ?? 0) * 10, modelHost: modelHost * 10 };
}

async function measure(path) {
  const before = serverCpuMs();
  const result = await autocannon({ url: `${url}${path}`, connections: 50, duration: seconds });
  const after = serverCpuMs();
  const perRequest = (ms) => (ms * 1000) / result.requests.total;
  const cpuUs = before && {
    gateway: perRequest(after.gateway - before.gateway),
    modelHost: perRequest(after.modelHost - before.modelHost),
  };
  return { result, cpuUs };
}

const best = new Map();
try {
  await ready();
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const path of PATHS) {
      const { result, cpuUs } = await measure(path);
      if (result.non2xx > 0 || result.errors > 0) {
        throw new Error(`${path}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
      }
      const rps = result.requests.average;
      const seen = best.get(path) ?? { rps: 0, p99: 0, cpuUs: [] };
      if (cpuUs !== undefined) seen.cpuUs.push(cpuUs);
      best.set(path, rps > seen.rps ? { rps, p99: result.latency.p99, cpuUs: seen.cpuUs } : seen);
    }
  }
} finally {
  gateway?.kill('SIGTERM');
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpuOf = (path) => {
  const runs = best.get(path).cpuUs;
  if (runs.length === 0) return undefined;
  return { gateway: median(runs.map((run) => run.gateway)), modelHost: median(runs.map((run) => run.modelHost)) };
};
const health = best.get('/health');
const healthCpu = cpuOf('/health');
console.log(
  `machine: ${cpus().length} x ${cpus()[0].model}, node ${process.version}; best of ${ROUNDS} runs of ${seconds} s, -c 50`,
);
console.log(
  '| path | req/s (best run) | p99 latency ms | ratio to /health | CPU µs/request: gateway | model host | ratio by CPU |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const path of PATHS) {
  const { rps, p99 } = best.get(path);
  const cpu = cpuOf(path);
  const total = (c) => c.gateway + c.modelHost;
  const cells = cpu
    ? [Math.round(cpu.gateway), Math.round(cpu.modelHost), (total(healthCpu) / total(cpu)).toFixed(2)]
    : ['-', '-', '-'];
  console.log(
    `| \`GET ${path}\` | ${Math.round(rps)} | ${p99} | ${(rps / health.rps).toFixed(2)} | ${cells.join(' | ')} |`,
  );
}
if (jsonFlag >= 0) {
  const rows = PATHS.map((path) => {
    const cpu = cpuOf(path);
    const total = (c) => c.gateway + c.modelHost;
    return {
      path,
      rps_best: Math.round(best.get(path).rps),
      p99_ms: best.get(path).p99,
      ratio_to_health: Math.round((best.get(path).rps / health.rps) * 100) / 100,
      cpu_us_per_request: cpu && { gateway: Math.round(cpu.gateway), model_host: Math.round(cpu.modelHost) },
      ratio_by_cpu: cpu ? Math.round((total(healthCpu) / total(cpu)) * 100) / 100 : null,
    };
  });
  const what = `autocannon -c 50, best of ${ROUNDS} runs of ${seconds} s per path, interleaved`;
  writeResult({ benchmark: 'status-throughput', what, target_ratio: 0.9, rows }, process.argv[jsonFlag + 1]);
}
