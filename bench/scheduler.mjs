// The scheduler's effect on loads, makespan and waits: FIFO vs mode-aware at several SCHEDULER_MAX_DELAY_MS.
//
//   npm run build && node bench/scheduler.mjs            # simulation with the built scheduler classes
//   npm run build && node bench/scheduler.mjs --e2e      # 40 jobs through real gateways it starts (see below)
//   node bench/scheduler.mjs --e2e http://127.0.0.1:4200 # the same 40 jobs through a running gateway
//
// The simulation runs the gateway's own ModeAwareScheduler / FifoScheduler (dist/) against a model of one
// device: a job whose mode is not the active one pays a switch of S ms, every job then generates for G ms.
// S and G are MODEL INPUTS, not measurements made here: the "tiny CPU" rows take them from the end-to-end
// figures in docs/BENCHMARKS.md (mode-switch latency table); the "GPU-scale" rows are plausible figures for a
// 24 GB card (SDXL 1024², 30 steps ≈ 4 s; a switch from the RAM tier ≈ 2 s; a cold load from disk ≈ 12 s),
// labelled as assumptions. 40 jobs alternate between 2 or 3 modes and all wait at t=0; the first mode is
// active at start (the gateway loads the default mode before it serves).
//
// --e2e posts the 40 jobs to POST /api/jobs at once and reads each job's `switch` and times from
// GET /api/jobs/:id once all have finished. With a URL it measures that gateway (its SCHEDULER_MAX_DELAY_MS
// decides what). Without one it starts the built gateway (dist/) on the tiny demo models twice, with
// SCHEDULER_MAX_DELAY_MS=0 (FIFO) and unset (the mode-aware default), each time with
//   MODELHOST_BENCH_LOAD_DELAY_MS (BENCH_LOAD_DELAY_MS here, default 2000): BENCHMARK ONLY, every load that is
//     not resident takes that much longer, so that a switch costs what a GPU load from the RAM tier does;
//   MEMORY_CAP_BYTES (BENCH_MEMORY_CAP_BYTES, default 6000000): room for one tiny checkpoint, not two, so the
//     modes evict each other and no switch finds its mode resident.
//   QUEUE_TIMEOUT_MS=3600000, so that a slow FIFO run finishes; BENCH_STEPS sets the jobs' steps (unset: the
//     mode's default).
// Raw figures go to bench/results/scheduler-e2e-<date>.json.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

import { FifoScheduler } from '../dist/apps/gateway/queue/fifo.scheduler.js';
import { ModeAwareScheduler } from '../dist/apps/gateway/queue/mode-aware.scheduler.js';

import { gatewayUrlIn } from './lib.mjs';

const JOBS = 40;

function jobsFor(modeCount) {
  const modes = ['a', 'b', 'c'].slice(0, modeCount);
  return Array.from({ length: JOBS }, (_, i) => ({
    id: `j${i + 1}`,
    kind: 'generation',
    mode: modes[i % modeCount],
    seq: i + 1,
    submittedAt: 0,
  }));
}

/**
 * One worker on one device. Returns loads, makespan, waits (submission to start) and the longest any job was
 * passed over: the time from its FIFO turn (when it became the oldest waiting job) to its start, which the
 * mode-aware scheduler bounds by maxDelayMs.
 */
function simulate(scheduler, jobs, { switchMs, generateMs }) {
  for (const job of jobs) scheduler.add(job);
  const waiting = new Set(jobs.map((job) => job.seq));
  let oldest = 1;
  let turnAt = 0;
  let activeMode = jobs[0].mode;
  let now = 0;
  let loads = 0;
  let maxWait = 0;
  let totalWait = 0;
  let passedOver = 0;
  for (let job = scheduler.next({ activeMode, now }); job; job = scheduler.next({ activeMode, now })) {
    const wait = now - job.submittedAt;
    maxWait = Math.max(maxWait, wait);
    totalWait += wait;
    waiting.delete(job.seq);
    if (job.seq === oldest) {
      passedOver = Math.max(passedOver, now - turnAt);
      while (oldest <= jobs.length && !waiting.has(oldest)) oldest += 1;
      turnAt = now;
    }
    if (job.mode !== activeMode) {
      loads += 1;
      now += switchMs;
      activeMode = job.mode;
    }
    now += generateMs;
  }
  return { loads, makespan: now, maxWait, meanWait: totalWait / jobs.length, passedOver };
}

const SCENARIOS = [
  { label: 'tiny CPU, both modes resident (measured: S≈21, G≈141)', switchMs: 21, generateMs: 141 },
  { label: 'tiny CPU, cold load from disk (measured: S≈400, G≈141)', switchMs: 400, generateMs: 141 },
  { label: 'GPU-scale, switch from the RAM tier (assumed: S=2000, G=4000)', switchMs: 2000, generateMs: 4000 },
  { label: 'GPU-scale, switch = load from disk (assumed: S=12000, G=4000)', switchMs: 12000, generateMs: 4000 },
];
const DELAYS = [0, 1000, 5000, 15000, 30000, 60000, 120000, 3_600_000];

const seconds = (ms) => (ms / 1000).toFixed(1);

function simulation() {
  console.log(`## ${JOBS} jobs alternating between modes, all waiting at t=0 (simulation, model inputs S and G)\n`);
  for (const scenario of SCENARIOS) {
    for (const modeCount of [2, 3]) {
      console.log(`### ${scenario.label}, ${modeCount} modes\n`);
      console.log('| scheduler | loads | makespan s | max wait s | mean wait s | longest passed over s |');
      console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
      const rows = [['FIFO', new FifoScheduler()]];
      for (const delay of DELAYS) rows.push([`mode-aware, ${delay} ms`, new ModeAwareScheduler({ maxDelayMs: delay })]);
      for (const [name, scheduler] of rows) {
        const r = simulate(scheduler, jobsFor(modeCount), scenario);
        console.log(
          `| ${name} | ${r.loads} | ${seconds(r.makespan)} | ${seconds(r.maxWait)} | ${seconds(r.meanWait)} | ${seconds(r.passedOver)} |`,
        );
      }
      console.log('');
    }
  }
}

/** Decisions per second at depth: the engine's budget is ≥ 100k jobs/s end to end, so this must be far above. */
function throughput() {
  const depth = 100_000;
  console.log(`## Decision throughput: ${depth.toLocaleString('en')} jobs added, then taken one by one\n`);
  console.log('| scheduler | jobs/s (add + next) |');
  console.log('| --- | ---: |');
  const jobs = Array.from({ length: depth }, (_, i) => ({
    id: `j${i + 1}`,
    kind: 'generation',
    mode: ['a', 'b', 'c'][i % 3],
    seq: i + 1,
    submittedAt: 0,
  }));
  for (const [name, make] of [
    ['FIFO', () => new FifoScheduler()],
    ['mode-aware, 30000 ms', () => new ModeAwareScheduler({ maxDelayMs: 30_000 })],
    ['mode-aware, 0 ms', () => new ModeAwareScheduler({ maxDelayMs: 0 })],
  ]) {
    let best = Infinity;
    for (let round = 0; round < 5; round += 1) {
      const scheduler = make();
      const started = performance.now();
      for (const job of jobs) scheduler.add(job);
      let activeMode = 'a';
      for (let job = scheduler.next({ activeMode, now: 1 }); job; job = scheduler.next({ activeMode, now: 1 })) {
        activeMode = job.mode;
      }
      best = Math.min(best, performance.now() - started);
    }
    console.log(`| ${name} | ${Math.round(depth / (best / 1000)).toLocaleString('en')} |`);
  }
  console.log('');
}

const FINAL = ['completed', 'failed', 'cancelled'];
/** BENCH_STEPS: denoising steps per job (unset: the mode's default); few keep the run about switches. */
const STEPS = process.env.BENCH_STEPS ? { num_inference_steps: Number(process.env.BENCH_STEPS) } : {};

async function endToEnd(url, modeCount) {
  const modes = (process.env.BENCH_MODES ?? 'sdxl-general,sd15-fast,sdxl-portrait').split(',').slice(0, modeCount);
  const started = performance.now();
  const ids = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) => {
      const response = await fetch(`${url}/api/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode: modes[i % modeCount], prompt: 'a beautiful landscape', seed: i, ...STEPS }),
      });
      if (response.status !== 202) throw new Error(`POST /api/jobs: HTTP ${response.status}`);
      return (await response.json()).id;
    }),
  );
  const jobs = [];
  for (const id of ids) {
    for (;;) {
      const job = await (await fetch(`${url}/api/jobs/${id}`)).json();
      if (FINAL.includes(job.state)) {
        jobs.push(job);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const finished = Math.max(...jobs.map((job) => Date.parse(job.finished_at)));
  const first = Math.min(...jobs.map((job) => Date.parse(job.created_at)));
  const waits = jobs.map((job) => job.queue_ms ?? 0);
  const result = {
    modes,
    loads: jobs.filter((job) => job.switch !== null).length,
    switchMs: jobs.reduce((sum, job) => sum + (job.switch_ms ?? 0), 0),
    // From the first job's creation to the last one's end, by the gateway's clock.
    makespanMs: finished - first,
    clientMs: Math.round(performance.now() - started),
    maxWaitMs: Math.max(...waits),
    meanWaitMs: Math.round(waits.reduce((a, b) => a + b, 0) / waits.length),
    notCompleted: jobs.filter((job) => job.state !== 'completed').length,
    jobs: jobs.map((job) => ({
      id: job.id,
      mode: job.mode,
      state: job.state,
      switch: job.switch,
      queue_ms: job.queue_ms,
      switch_ms: job.switch_ms,
      generate_ms: job.generate_ms,
      started_at: job.started_at,
      finished_at: job.finished_at,
    })),
  };
  return result;
}

function row(name, r) {
  console.log(
    `| ${name} | ${r.modes.length} | ${r.loads} | ${seconds(r.switchMs)} | ${seconds(r.makespanMs)} | ` +
      `${seconds(r.maxWaitMs)} | ${seconds(r.meanWaitMs)} | ${r.notCompleted} |`,
  );
}

function tableHead() {
  console.log(
    '| scheduler | modes | jobs with a switch | time switching s | makespan s | max wait s | mean wait s | not completed |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
}

/** Starts the built gateway on PORT=0 and resolves with its URL once /ready answers 200. */
async function startGateway(env) {
  const child = spawn(process.execPath, [resolve('dist/apps/gateway/main.js')], {
    env: { ...process.env, PORT: '0', SIDECAR_DEVICE: 'cpu', MODES_WATCH: '0', HF_HUB_OFFLINE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk.toString()));
  child.stderr.on('data', (chunk) => (output += chunk.toString()));
  const deadline = Date.now() + 600_000;
  let url;
  while (!url) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`the gateway did not start:\n${output.slice(-3000)}`);
    url = gatewayUrlIn(output);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (;;) {
    if (Date.now() > deadline) throw new Error(`${url} never became ready:\n${output.slice(-3000)}`);
    if ((await fetch(`${url}/ready`).catch(() => undefined))?.status === 200) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const stop = () =>
    new Promise((done) => {
      child.once('exit', done);
      child.kill('SIGTERM');
    });
  return { url, stop, logs: () => output };
}

async function ownGateways() {
  const loadDelayMs = Number(process.env.BENCH_LOAD_DELAY_MS ?? 2000);
  const memoryCap = process.env.BENCH_MEMORY_CAP_BYTES ?? '6000000';
  const dir = mkdtempSync(join(tmpdir(), 'bench-scheduler-'));
  execFileSync('sidecar/.venv/bin/python', ['-m', 'modelhost', 'make-demo-models', dir], { stdio: 'ignore' });
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
  const machine = { cpu: cpus()[0]?.model, cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30) };
  console.log(
    `## ${JOBS} jobs through real gateways on the tiny demo models: BENCHMARK-ONLY load delay ${loadDelayMs} ms ` +
      `(MODELHOST_BENCH_LOAD_DELAY_MS), MEMORY_CAP_BYTES=${memoryCap}\n`,
  );
  console.log(`${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; commit ${commit}\n`);
  tableHead();
  const runs = [];
  for (const [name, maxDelay] of [
    ['FIFO (SCHEDULER_MAX_DELAY_MS=0)', '0'],
    ['mode-aware (default)', undefined],
  ]) {
    const env = {
      MODES_FILE: join(dir, 'modes.yaml'),
      MODELHOST_BENCH_LOAD_DELAY_MS: String(loadDelayMs),
      MEMORY_CAP_BYTES: memoryCap,
      // A slow FIFO run must not turn its last jobs into queue timeouts.
      QUEUE_TIMEOUT_MS: '3600000',
      ...(maxDelay !== undefined && { SCHEDULER_MAX_DELAY_MS: maxDelay }),
    };
    const gateway = await startGateway(env);
    try {
      for (const modeCount of [2, 3]) {
        const result = await endToEnd(gateway.url, modeCount);
        row(name, result);
        runs.push({ scheduler: name, schedulerMaxDelayMs: maxDelay ?? 'default', ...result });
      }
    } finally {
      await gateway.stop();
    }
  }
  const date = new Date().toISOString();
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/scheduler-e2e-${date.slice(0, 10)}.json`;
  writeFileSync(
    file,
    JSON.stringify(
      { date, commit, machine, loadDelayMs, memoryCapBytes: Number(memoryCap), jobs: JOBS, runs },
      null,
      2,
    ),
  );
  console.log(`\nraw figures: ${file}`);
}

const e2e = process.argv.indexOf('--e2e');
if (e2e >= 0) {
  const url = process.argv[e2e + 1];
  if (url) {
    console.log(`## ${JOBS} jobs through ${url} (its SCHEDULER_MAX_DELAY_MS)\n`);
    tableHead();
    for (const modeCount of [2, 3]) row('that gateway', await endToEnd(url, modeCount));
  } else {
    await ownGateways();
  }
} else {
  simulation();
  throughput();
}
