// Jobs per second through the job engine: no-op CustomJobs submitted to the real WorkerPool (from dist/, inside
// the whole AppModule, over an in-memory model host that answers at once), against a bare promise queue run in
// the same process as the baseline. Nothing here touches a model: it is the engine's own cost per job.
//
//   npm run build && node bench/queue-throughput.mjs [JOBS] [--json FILE]
//
// Two ways in: "all at once" submits every job before the first runs (the queue is JOBS deep; QUEUE_MAX is
// raised to fit), "in waves of 100" submits 100, waits for them, and so on (the queue stays shallow). All-at-once
// depths grow tenfold from 1,000 up to JOBS, and stop where the last one's time, twenty times over (tenfold for a
// cost per job that stays flat, twice that for slack), would pass BENCH_QUEUE_BUDGET_S (20 s): the rows show how
// the cost per job grows with depth, and a depth not run is said so, never extrapolated. The waves stop at three
// times that budget, and say after how many jobs. Each row also gives the process's own CPU time (`cpu_ms`: user
// and system, every thread, the garbage collector's included): the machine may be shared, and the wall clock
// counts the neighbours' turns too.
// Every row comes after WARM_UP jobs in waves, the same for every build, and times ROW_JOBS jobs at least (an
// all-at-once depth runs `runs` times over; its `jobs`, `ms` and `cpu_ms` are the sums).
import { startEngine, load } from './engine-fixture.mjs';
import { round, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const JOBS = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 100_000);
const jsonFlag = args.indexOf('--json');
const WAVE = 100;
/**
 * Jobs run before any row is timed. The first 20,000 through a fresh engine cost two to three times what later ones
 * do, and their process CPU time runs ahead of the wall clock: the compiler threads are still optimizing the engine
 * (docs/BENCHMARKS.md, "A fifth time"). A row measures the engine a server runs on, not its start.
 */
const WARM_UP = 20_000;
/**
 * The jobs each row times, at least: a shallower depth runs that many times over, and the waves run that many. The
 * garbage collector's full collections come every few tens of thousands of jobs here; a shorter row pays for one or
 * for none by where it falls, at the same place in every round, so two builds would be compared by where their
 * collections fall rather than by what they cost.
 */
const ROW_JOBS = 100_000;
const BUDGET_MS = Number(process.env.BENCH_QUEUE_BUDGET_S ?? 20) * 1000;

const { CustomJob } = await load('queue/job.types.js');

async function engine() {
  const { pool, close } = await startEngine({ QUEUE_MAX: String(Math.max(JOBS, 1000)) });
  return { submit: () => pool.submitJob(new CustomJob({ handler: 'bench.noop', args: [] })).result(), close };
}

/** The baseline: a FIFO of thunks with a head index (no Array.shift), one worker awaiting each in turn. */
function bareQueue() {
  const items = [];
  let head = 0;
  let running = false;
  const drain = async () => {
    running = true;
    while (head < items.length) {
      const { run, resolve: done, reject } = items[head];
      items[head++] = undefined;
      try {
        done(await run());
      } catch (error) {
        reject(error);
      }
    }
    running = false;
  };
  return {
    submit: () =>
      new Promise((done, reject) => {
        items.push({ run: async () => undefined, resolve: done, reject });
        if (!running) void drain();
      }),
    close: async () => undefined,
  };
}

/** { ms, cpuMs } */
async function allAtOnce(queue, count) {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const results = [];
  for (let i = 0; i < count; i += 1) results.push(queue.submit());
  await Promise.all(results);
  return { ms: performance.now() - started, cpuMs: cpuMsSince(cpu) };
}

function cpuMsSince(start) {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

/** Waves of WAVE jobs until `count` ran or the budget is spent: { jobs, ms, cpuMs }. */
async function inWaves(queue, count, budgetMs = Infinity) {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let done = 0;
  while (done < count && performance.now() - started < budgetMs) {
    const wave = Math.min(WAVE, count - done);
    await Promise.all(Array.from({ length: wave }, () => queue.submit()));
    done += wave;
  }
  return { jobs: done, ms: performance.now() - started, cpuMs: cpuMsSince(cpu) };
}

const rows = [];
const perSecond = (count, ms) => Math.round(count / (ms / 1000));
for (const [name, make] of [
  ['bare promise queue (baseline)', bareQueue],
  ['WorkerPool (the engine)', engine],
]) {
  const queue = await make();
  try {
    await inWaves(queue, WARM_UP);
    const waveJobs = Math.max(JOBS, ROW_JOBS);
    const waves = await inWaves(queue, waveJobs, 3 * BUDGET_MS);
    rows.push({
      queue: name,
      how: `${waveJobs} jobs in waves of ${WAVE}`,
      jobs: waves.jobs,
      ms: round(waves.ms),
      jobs_per_s: perSecond(waves.jobs, waves.ms),
      cpu_ms: round(waves.cpuMs),
      ...(waves.jobs < waveJobs && {
        stopped: `after ${waves.jobs} jobs: the ${(3 * BUDGET_MS) / 1000} s budget was spent`,
      }),
    });
    for (let depth = 1000; ; depth = Math.min(JOBS, depth * 10)) {
      const runs = Math.ceil(ROW_JOBS / depth);
      let ms = 0;
      let cpuMs = 0;
      for (let run = 0; run < runs; run += 1) {
        const once = await allAtOnce(queue, depth);
        ms += once.ms;
        cpuMs += once.cpuMs;
      }
      rows.push({
        queue: name,
        how: `${depth} jobs all at once`,
        runs,
        jobs: depth * runs,
        ms: round(ms),
        jobs_per_s: perSecond(depth * runs, ms),
        cpu_ms: round(cpuMs),
      });
      if (depth === JOBS) break;
      // Ten times deeper takes ten times as long while the cost per job stays flat; twice that leaves room for
      // the garbage collector's share growing with what the deeper queue keeps alive.
      if ((ms / runs) * 20 > BUDGET_MS) {
        rows.push({
          queue: name,
          how: `${Math.min(JOBS, depth * 10)} jobs all at once`,
          jobs: Math.min(JOBS, depth * 10),
          not_run: `${depth} took ${round(ms / runs / 1000)} s; the next depth would pass the ${BUDGET_MS / 1000} s budget`,
        });
        break;
      }
    }
  } finally {
    await queue.close();
  }
}

const result = {
  benchmark: 'queue-throughput',
  what: 'no-op CustomJobs through the WorkerPool (AppModule over an in-memory model host) vs a bare promise queue',
  target_jobs_per_s: 100_000,
  // How V8 collected garbage in this process: `node --single-threaded-gc` (as BENCH_BASELINE's rounds run it) or not.
  gc: process.execArgv.includes('--single-threaded-gc') ? 'single-threaded' : 'default',
  rows,
};
const out = writeResult(result, jsonFlag >= 0 ? args[jsonFlag + 1] : undefined);
console.table(rows);
console.log(`written to ${out}`);
