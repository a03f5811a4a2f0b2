// What the benchmark scripts share: the demo models, starting a model host and a gateway, percentiles, and the
// result files (every one carries the machine, its load, the date and the commit, so a figure is never without
// the run it came from).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const PYTHON = process.env.SIDECAR_PYTHON ?? 'sidecar/.venv/bin/python';

/** MODES_FILE when set, else the tiny demo models (made once per folder: BENCH_DEMO_DIR, else a fresh one). */
export function demoModesFile() {
  if (process.env.MODES_FILE) return process.env.MODES_FILE;
  const dir = process.env.BENCH_DEMO_DIR ?? mkdtempSync(join(tmpdir(), 'bench-demo-'));
  const file = join(dir, 'modes.yaml');
  if (!existsSync(file)) {
    execFileSync(PYTHON, ['-m', 'modelhost', 'make-demo-models', dir], { stdio: 'ignore' });
  }
  return file;
}

/** A model host on a private socket, on the CPU unless SIDECAR_DEVICE says otherwise; resolves once it serves. */
export async function spawnModelHost({ env = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mh-'));
  const address = `unix:${join(dir, 'modelhost.sock')}`;
  const child = spawn(
    PYTHON,
    [
      '-m',
      'modelhost',
      'serve',
      '--listen',
      address,
      '--exit-with-parent',
      '--device',
      process.env.SIDECAR_DEVICE ?? 'cpu',
    ],
    { env: { ...process.env, HF_HUB_OFFLINE: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const collect = (chunk) => (log = (log + chunk).slice(-20_000));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise((done) => child.once('exit', done));
  for (const deadline = Date.now() + 180_000; !/serving on /.test(log); await sleep(100)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the model host did not start:\n${log}`);
  }
  return {
    address,
    pid: child.pid,
    log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * The URL in the gateway's start line, once the line has arrived whole: a read of the pipe can stop inside it, and
 * a port cut short is another port.
 */
export const gatewayUrlIn = (log) => /gateway listening on (http:\/\/[^\s"]+)(?=[\s"])/.exec(log)?.[1];

/**
 * The built gateway on PORT=0; resolves once /ready answers 200 (or /health, with `ready: false`). `detached`: in a
 * process group of its own, which `kill()` ends whole (the gateway and the model host it started) where a bench
 * must not leave a model host holding gigabytes behind it; `onSpawn(kill)` hands that over before the wait for
 * ready (a bench stopped during a long start must end the group too: a detached one misses the terminal's ^C).
 */
export async function spawnGateway({
  main = 'dist/apps/gateway/main.js',
  env = {},
  nodeOptions,
  ready = true,
  detached = false,
  readyTimeoutMs = 300_000,
  onSpawn,
} = {}) {
  const child = spawn(process.execPath, [...(nodeOptions ? nodeOptions.split(' ') : []), resolve(main)], {
    env: { ...process.env, PORT: '0', HF_HUB_OFFLINE: '1', NO_COLOR: '1', SIDECAR_DEVICE: 'cpu', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let log = '';
  // Kept short: pino writes a line per request, and the pipe must be drained or the gateway blocks on it.
  const collect = (chunk) => (log = (log + chunk).slice(-50_000));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise((done) => child.once('exit', done));
  const kill = () => {
    try {
      process.kill(detached ? -child.pid : child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  onSpawn?.(kill);
  let url;
  for (const deadline = Date.now() + readyTimeoutMs; ; await sleep(100)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      // A gateway that never became ready must not stay behind (with the model host it may have started).
      kill();
      throw new Error(`the gateway did not start:\n${log}`);
    }
    url ??= gatewayUrlIn(log);
    if (url === undefined) continue;
    const status = await fetch(`${url}/${ready ? 'ready' : 'health'}`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) break;
  }
  return {
    url,
    pid: child.pid,
    log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
    /** At once, without waiting (the whole group where detached): for a bench that is itself being stopped. */
    kill,
  };
}

/** CPU time (user + system, ms) a process has used so far; 10 ms resolution (clock ticks). */
export function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The nearest-rank percentile of an ascending array. */
export const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

export const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export function commit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
    return dirty.trim() ? `${head}+changes` : head;
  } catch {
    return 'unknown';
  }
}

export function machine() {
  let memory = `${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  try {
    memory = `${(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 2 ** 20).toFixed(0)} GiB`;
  } catch {
    // not Linux
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memory, node: process.version };
}

/**
 * Writes `result` (with machine, load average, date and commit added) to `file`, or to
 * bench/results/<benchmark>-<date>.json; returns the path.
 */
export function writeResult(result, file) {
  const date = new Date().toISOString();
  const full = {
    ...result,
    machine: machine(),
    load_average: loadavg().map((x) => round(x, 2)),
    date,
    commit: commit(),
  };
  const out = file ?? join('bench/results', `${result.benchmark}-${date.slice(0, 10)}.json`);
  mkdirSync(resolve(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(full, null, 2)}\n`);
  return out;
}
