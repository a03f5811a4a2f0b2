// Prefetch on the real stack with full-size checkpoints (issue 21, build 4): 12 jobs alternating full-size SD1.5
// single files, strict FIFO, with PREFETCH=1 and PREFETCH=0 in one invocation (a fresh gateway each).
//
//   npm run build && node bench/prefetch-makespan.mjs [--json FILE]
//   BENCH_PREFETCH_MAKESPAN=1 npm run bench        # as a piece of the suite (off by default: it takes minutes)
//
// The built gateway (dist/) starts its own model host; nothing is delayed on purpose (no
// MODELHOST_BENCH_LOAD_DELAY_MS): a switch costs what the model host's real load costs. The files are random SD1.5
// checkpoints of the released size (fp16, 2.1 GB): the suite's own (`make-full-size-sd15`, seed 1500) and more made
// the same way from seeds 1501, 1502, kept in the cache folder so that a rerun finds them. Other bytes and other
// paths: bases the model host must build separately (a base is keyed by path and fingerprint). All are read once
// before the runs, so every load is a cold load from the page cache, in both runs alike.
//
// The model host: device (MEMORY_CAP_BYTES) and RAM tier (RAM_CACHE_BYTES) each with room for one pipeline (1.5×
// its fp32 size on the CPU), SCHEDULER_MAX_DELAY_MS=0 so the jobs run a, b, c, a, b, c as queued and every job
// switches. Three modes by default (BENCH_MAKESPAN_MODES=2 for two): with two, the tier alone already holds the
// other mode (the one just evicted is parked there), so after the first switch both runs switch from RAM and the
// comparison says nothing about prefetch; with three, the tier without prefetch only ever holds the mode left two
// switches ago, so every switch of PREFETCH=0 reads its file. Each job's generation (BENCH_MAKESPAN_SIZE,
// BENCH_MAKESPAN_STEPS) is sized to last longer than a cold load here, so that a prefetch has the time to finish.
// BENCH_MAKESPAN_THREADS sets the model host's OMP_NUM_THREADS (unset: torch's default, every core; with 1 the
// generation leaves a core to the prefetch build, as a GPU's generation leaves the CPU).
//
// Per run: the makespan (first job created to last finished, by the gateway's clock), each switch's switch_ms,
// source and prefetched from GET /api/jobs/:id, the CPU time of the gateway and its model host over the jobs (from
// /proc/<pid>/stat), and the load average (1 min) sampled while the jobs ran: the machine may be shared.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { dump } from 'js-yaml';

import { PYTHON, round, spawnGateway, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const jsonFlag = args.indexOf('--json');
const out = jsonFlag >= 0 ? args[jsonFlag + 1] : undefined;
const JOBS = Number(process.env.BENCH_MAKESPAN_JOBS ?? 12);
const SIZE = process.env.BENCH_MAKESPAN_SIZE ?? '256x256';
const STEPS = Number(process.env.BENCH_MAKESPAN_STEPS ?? 2);
const THREADS = process.env.BENCH_MAKESPAN_THREADS;
// Per run, past which the bench gives up rather than hold the machine: a run takes 3–5 minutes here.
const RUN_DEADLINE_MS = Number(process.env.BENCH_MAKESPAN_DEADLINE_S ?? 900) * 1000;
const MODES = ['a', 'b', 'c'].slice(0, Number(process.env.BENCH_MAKESPAN_MODES ?? 3));
if (MODES.length < 2) throw new Error('BENCH_MAKESPAN_MODES: 2 or 3');
const FINAL = ['completed', 'failed', 'cancelled'];
// BENCH_MAKESPAN_ORDER=0,1 runs PREFETCH=0 first: on a shared machine, whether the order moves the figures.
const ORDER = (process.env.BENCH_MAKESPAN_ORDER ?? '1,0').split(',').map((x) => x.trim() === '1');

// The suite's file, and more of other bytes made the same way (the factory's own functions, so that all have the
// released layout and size), one seed each.
const MAKE_FILES = `
import sys
import torch
from modelhost.configs import cache_root, component_config
from modelhost.demo.full_size import (RANDOM_MODELS_DIR, SD15_COMPONENTS, SD15_SEED, build_random_pipeline,
    full_size_sd15_checkpoint, save_checkpoint)
print(full_size_sd15_checkpoint())
for seed in range(SD15_SEED + 1, SD15_SEED + int(sys.argv[1])):
    path = cache_root() / RANDOM_MODELS_DIR / f"sd15-random-fp16-seed{seed}.safetensors"
    if not path.is_file():
        configs = {name: component_config("sd15", name) for name in SD15_COMPONENTS}
        torch.manual_seed(seed)
        save_checkpoint(build_random_pipeline("sd15", configs, torch.device("cpu"), torch.float16), path)
    print(path)
`;

/** Reads a file whole (into the page cache); answers the seconds it took. */
function readThrough(path) {
  const t0 = performance.now();
  const fd = openSync(path, 'r');
  const buffer = Buffer.allocUnsafe(16 * 2 ** 20);
  try {
    while (readSync(fd, buffer, 0, buffer.length, null) > 0);
  } finally {
    closeSync(fd);
  }
  return (performance.now() - t0) / 1000;
}

/** The model host the gateway started: its child running `-m modelhost serve`. */
function modelHostPid(gatewayPid) {
  for (const task of readdirSync(`/proc/${gatewayPid}/task`)) {
    const children = readFileSync(`/proc/${gatewayPid}/task/${task}/children`, 'utf8').trim().split(/\s+/);
    for (const pid of children.filter(Boolean)) {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('modelhost')) return Number(pid);
    }
  }
  throw new Error(`no model host among the children of the gateway (pid ${gatewayPid})`);
}

/** User and system CPU ms of each process, apart: a load's page faults and zeroing show as system time. */
function cpuOf(pids) {
  return pids.map((pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    // utime and stime, in clock ticks of 10 ms (as lib.mjs's cpuMs reads them).
    return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
  });
}
const cpuSpent = (before, after) =>
  after.map((x, i) => ({
    user_s: round((x.user - before[i].user) / 1000),
    system_s: round((x.system - before[i].system) / 1000),
  }));

// The model root (hard links to the cached files) and modes.yaml.
const work = mkdtempSync(join(tmpdir(), 'bench-makespan-'));
/** Ends the running gateway's process group; set from its spawn on, so a stop during its start is covered. */
let killGateway;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // The gateway and its model host hold gigabytes: they go with the bench.
    killGateway?.();
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
}

async function record(url, id) {
  const response = await fetch(`${url}/api/jobs/${id}`);
  if (response.status !== 200) throw new Error(`GET /api/jobs/${id}: HTTP ${response.status}`);
  return response.json();
}

async function run(prefetch, modesFile, unitBytes) {
  const loadBefore = loadavg().map((x) => round(x, 2));
  const t0 = performance.now();
  const gateway = await spawnGateway({
    detached: true,
    onSpawn: (kill) => (killGateway = kill),
    // The default mode's cold load comes before /ready, on a shared machine.
    readyTimeoutMs: 600_000,
    env: {
      MODES_FILE: modesFile,
      MODES_WATCH: '0',
      MEMORY_CAP_BYTES: String(Math.round(unitBytes * 1.5)),
      RAM_CACHE_BYTES: String(Math.round(unitBytes * 1.5)),
      SCHEDULER_MAX_DELAY_MS: '0',
      PREFETCH: prefetch ? '1' : '0',
      // A run slower than the default queue timeout must still finish all its jobs.
      QUEUE_TIMEOUT_MS: '3600000',
      ...(THREADS !== undefined && { OMP_NUM_THREADS: THREADS }),
    },
  });
  try {
    const readyS = (performance.now() - t0) / 1000;
    const pids = [gateway.pid, modelHostPid(gateway.pid)];
    const cpuBefore = cpuOf(pids);
    const started = performance.now();
    const ids = [];
    // One after the other, not all in flight at once: the queue's order is the order of arrival.
    for (let i = 0; i < JOBS; i += 1) {
      const response = await fetch(`${gateway.url}/api/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          mode: MODES[i % MODES.length],
          prompt: 'a lighthouse on a cliff',
          seed: i,
          size: SIZE,
          num_inference_steps: STEPS,
        }),
      });
      if (response.status !== 202) throw new Error(`POST /api/jobs: HTTP ${response.status} ${await response.text()}`);
      ids.push((await response.json()).id);
    }
    const done = new Map();
    const load1 = [];
    // Polled with a deadline: every record is final (or the run has failed) before anything is read from them.
    for (const deadline = Date.now() + RUN_DEADLINE_MS; done.size < ids.length; await sleep(500)) {
      if (Date.now() > deadline) throw new Error(`not all ${JOBS} jobs finished in ${RUN_DEADLINE_MS / 1000} s`);
      load1.push(loadavg()[0]);
      for (const id of ids.filter((x) => !done.has(x))) {
        const job = await record(gateway.url, id);
        if (FINAL.includes(job.state)) done.set(id, job);
      }
    }
    const clientS = (performance.now() - started) / 1000;
    const [gatewayCpu, modelHostCpu] = cpuSpent(cpuBefore, cpuOf(pids));
    const cpu = (gatewayCpu.user_s + gatewayCpu.system_s + modelHostCpu.user_s + modelHostCpu.system_s) * 1000;
    const jobs = ids.map((id) => done.get(id));
    const failed = jobs.filter((job) => job.state !== 'completed');
    if (failed.length) throw new Error(`jobs not completed: ${JSON.stringify(failed.map((j) => j.error))}`);
    const switches = jobs.filter((job) => job.switch !== null);
    const switchMs = switches.map((job) => job.switch_ms ?? 0);
    const totalSwitchMs = switchMs.reduce((a, b) => a + b, 0);
    const generateMs = jobs.map((job) => job.generate_ms ?? 0);
    return {
      prefetch,
      gateway_ready_s: round(readyS),
      makespan_s: round(
        (Math.max(...jobs.map((j) => Date.parse(j.finished_at))) -
          Math.min(...jobs.map((j) => Date.parse(j.created_at)))) /
          1000,
      ),
      client_s: round(clientS),
      switches: switches.length,
      switch_total_s: round(totalSwitchMs / 1000),
      switch_mean_ms: Math.round(totalSwitchMs / switches.length),
      prefetched_switches: switches.filter((job) => job.switch.prefetched).length,
      sources: Object.fromEntries(
        [...new Set(switches.map((job) => job.switch.source))].map((source) => [
          source,
          switches.filter((job) => job.switch.source === source).length,
        ]),
      ),
      generate_total_s: round(generateMs.reduce((a, b) => a + b, 0) / 1000),
      generate_mean_ms: Math.round(generateMs.reduce((a, b) => a + b, 0) / generateMs.length),
      // Over the jobs only (from the first POST to the last record): the gateway's start and default load excluded.
      cpu_s: round(cpu / 1000),
      cpu_per_wall: round(cpu / 1000 / clientS, 2),
      cpu_by_process: { gateway: gatewayCpu, model_host: modelHostCpu },
      load_average_before: loadBefore,
      load1_during: { min: round(Math.min(...load1), 2), max: round(Math.max(...load1), 2) },
      load_average_after: loadavg().map((x) => round(x, 2)),
      jobs: jobs.map((job) => ({
        mode: job.mode,
        source: job.switch?.source ?? null,
        prefetched: job.switch?.prefetched ?? null,
        switch_ms: job.switch_ms,
        generate_ms: job.generate_ms,
        queue_ms: job.queue_ms,
      })),
    };
  } finally {
    await gateway.stop();
    killGateway = undefined;
  }
}

const env = { ...process.env, HF_HUB_OFFLINE: '1', PYTHONPATH: process.env.PYTHONPATH ?? 'sidecar/src' };
// The first time on a machine this writes the two files (about 30 s each here); later runs find them.
const files = execFileSync(PYTHON, ['-c', MAKE_FILES, String(MODES.length)], { env, encoding: 'utf8' })
  .trim()
  .split('\n')
  .slice(-MODES.length);
try {
  // Hard links: the model root holds the files (no symlink leaving it) and nothing 2 GB is copied.
  mkdirSync(join(work, 'models'));
  files.forEach((file, i) => linkSync(file, join(work, 'models', `${MODES[i]}-${basename(file)}`)));
  const modesFile = join(work, 'modes.yaml');
  writeFileSync(
    modesFile,
    dump({
      model_root: join(work, 'models'),
      default_mode: MODES[0],
      modes: Object.fromEntries(
        MODES.map((mode, i) => [mode, { model: `${mode}-${basename(files[i])}`, default_size: SIZE }]),
      ),
    }),
  );
  const fileBytes = statSync(files[0]).size;
  // The pipeline on the CPU is fp32: twice the fp16 file.
  const unitBytes = 2 * fileBytes;
  const readS = files.map(readThrough);
  const runs = [];
  for (const prefetch of ORDER) {
    console.error(`[prefetch-makespan] PREFETCH=${prefetch ? 1 : 0}: ${JOBS} jobs, ${SIZE}, ${STEPS} steps`);
    runs.push(await run(prefetch, modesFile, unitBytes));
    const r = runs.at(-1);
    console.error(`[prefetch-makespan] makespan ${r.makespan_s} s, switches ${r.switch_total_s} s, cpu ${r.cpu_s} s`);
  }
  const result = {
    benchmark: 'prefetch-makespan',
    what:
      `${JOBS} jobs alternating ${MODES.length} full-size random SD1.5 single files (fp16, ${round(fileBytes / 1e9, 2)} GB each), ` +
      `${SIZE}, ${STEPS} steps, strict FIFO, device and RAM tier for one pipeline each, real gateway + model host`,
    jobs: JOBS,
    size: SIZE,
    steps: STEPS,
    omp_num_threads: THREADS ?? 'default',
    order: ORDER.map((prefetch) => `PREFETCH=${prefetch ? 1 : 0}`),
    file_bytes: fileBytes,
    page_cache_read_s: readS.map((s) => round(s, 2)),
    runs,
  };
  const file = writeResult(result, out);
  console.log(
    '| PREFETCH | makespan s | switches: sources (prefetched) | switch total s | switch mean ms | generate mean ms | CPU s (per wall s) | load 1 min during |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of runs)
    console.log(
      `| ${r.prefetch ? 1 : 0} | ${r.makespan_s} | ${r.switches}: ${Object.entries(r.sources)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')} (${r.prefetched_switches}) | ${r.switch_total_s} | ` +
        `${r.switch_mean_ms} | ${r.generate_mean_ms} | ${r.cpu_s} (${r.cpu_per_wall}) | ${r.load1_during.min}–${r.load1_during.max} |`,
    );
  console.log(`raw figures: ${file}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
