// The scheduler's effect on loads, makespan and waits: FIFO vs mode-aware at several SCHEDULER_MAX_DELAY_MS.
//
//   npm run build && node bench/scheduler.mjs            # simulation with the built scheduler classes
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
// --e2e URL posts the 40 jobs to POST /api/jobs of a running gateway at once and reads each job's `switch`
// and times from GET /api/jobs/:id once all have finished. It needs the job API (issue 8's job engine); the
// gateway's SCHEDULER_MAX_DELAY_MS decides what it measures, so run it once per value.
import { FifoScheduler } from '../dist/apps/gateway/queue/fifo.scheduler.js';
import { ModeAwareScheduler } from '../dist/apps/gateway/queue/mode-aware.scheduler.js';

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

async function endToEnd(url, modeCount) {
  const modes = (process.env.BENCH_MODES ?? 'sdxl-general,sd15-fast,sdxl-portrait').split(',').slice(0, modeCount);
  const started = performance.now();
  const ids = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) => {
      const response = await fetch(`${url}/api/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode: modes[i % modeCount], prompt: 'a beautiful landscape', seed: i }),
      });
      if (response.status !== 202) throw new Error(`POST /api/jobs: HTTP ${response.status}`);
      return (await response.json()).id;
    }),
  );
  const jobs = [];
  for (const id of ids) {
    for (;;) {
      const job = await (await fetch(`${url}/api/jobs/${id}`)).json();
      if (['completed', 'failed', 'cancelled'].includes(job.state)) {
        jobs.push(job);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const makespan = performance.now() - started;
  const loads = jobs.filter((job) => job.switch !== null).length;
  const maxWait = Math.max(...jobs.map((job) => job.queue_ms ?? 0));
  const failed = jobs.filter((job) => job.state !== 'completed').length;
  console.log(`| ${modeCount} modes | ${loads} | ${seconds(makespan)} | ${seconds(maxWait)} | ${failed} |`);
}

const e2e = process.argv.indexOf('--e2e');
if (e2e >= 0) {
  const url = process.argv[e2e + 1];
  if (!url) throw new Error('--e2e needs the gateway URL, e.g. --e2e http://127.0.0.1:4200');
  console.log(`## ${JOBS} jobs through ${url} (its SCHEDULER_MAX_DELAY_MS)\n`);
  console.log('| modes | jobs with a switch | makespan s | max queue_ms s | not completed |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const modeCount of [2, 3]) await endToEnd(url, modeCount);
} else {
  simulation();
  throughput();
}
