// `npm run bench`: every benchmark of the suite, one after the other, each next to its baseline from the same
// run. Each piece is its own script in bench/ (run alone for more rounds); this runs them with round counts
// that keep the whole under 10 minutes on 2 cores, collects their JSON into bench/results/bench-<date>.json,
// and prints the table that docs/BENCHMARKS.md carries (made by bench/table.mjs; `--write-docs` puts it there,
// between its markers).
//
//   npm run bench                      # build, run, print the table
//   npm run bench -- --write-docs      # and replace the generated section of docs/BENCHMARKS.md
//   BENCH_SCHEDULER_E2E=1 npm run bench   # also the scheduler's real-stack run (bench/scheduler.mjs --e2e)
//   BENCH_PREFETCH_MAKESPAN=1 npm run bench   # also prefetch on full-size files (bench/prefetch-makespan.mjs,
//                                             # about 10 minutes more on 2 cores: the suite is then past its 10)
//   BENCH_BASELINE=/old/checkout/dist/apps/gateway npm run bench   # and an older build, in the same run: its
//       gateway overhead interleaved with this one's, and its job engine's CPU per job alternated with this one's
//       (BENCH_BASELINE_ROUNDS rounds, 5)
//   node bench/run.mjs --render bench/results/bench-<date>.json [--write-docs]   # the table of a saved run
//
// GPU rows run only where CUDA is: on a machine without it they say "not run".
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { PYTHON, round, writeResult } from './lib.mjs';
import { render } from './table.mjs';

const started = performance.now();
const writeDocs = process.argv.includes('--write-docs');
const renderFlag = process.argv.indexOf('--render');
if (renderFlag >= 0) {
  publish(JSON.parse(readFileSync(process.argv[renderFlag + 1], 'utf8')));
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'bench-run-'));
const demoDir = join(work, 'demo');
const env = {
  ...process.env,
  BENCH_DEMO_DIR: demoDir,
  HF_HUB_OFFLINE: '1',
  PYTHONPATH: process.env.PYTHONPATH ?? 'sidecar/src',
};
const loadAtStart = loadavg().map((x) => round(x, 2));
/** An older build's dist/apps/gateway to measure against in this run (BENCH_BASELINE), or undefined. */
const baseline = process.env.BENCH_BASELINE && resolve(process.env.BENCH_BASELINE);
/** How many alternated rounds of the job engine each build gets against the baseline (about 10 s a round each). */
const BASELINE_ROUNDS = Math.max(1, Number(process.env.BENCH_BASELINE_ROUNDS ?? 5));
const results = {};
const timings = {};

/** Runs one piece with a time limit; its JSON (if it wrote one) goes into `results[name]`. */
async function piece(name, command, args, { limitS, json = true, extraEnv = {} } = {}) {
  const file = join(work, `${name}.json`);
  const t0 = performance.now();
  console.error(`[bench] ${name}: ${command} ${args.join(' ')}`);
  // Its own process group: a piece stopped at its limit takes the gateways and model hosts it started along.
  const child = spawn(command, json ? [...args, ...(command === PYTHON ? [file] : ['--json', file])] : args, {
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const stopGroup = () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // the group is gone already
    }
  };
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const timer = setTimeout(stopGroup, limitS * 1000);
  const code = await new Promise((done) => child.once('exit', (c, signal) => done(signal ?? c)));
  clearTimeout(timer);
  stopGroup();
  timings[name] = round((performance.now() - t0) / 1000);
  if (code !== 0) {
    results[name] = { failed: `exit ${code}${code === 'SIGTERM' ? ` (past its ${limitS} s limit)` : ''}` };
  } else if (json) {
    results[name] = JSON.parse(readFileSync(file, 'utf8'));
  } else {
    results[name] = { output: stdout };
  }
  console.error(`[bench] ${name}: ${timings[name]} s`);
}

const cuda = (() => {
  try {
    return (
      execFileSync(PYTHON, ['-c', 'import torch; print(torch.cuda.is_available())'], {
        env,
        encoding: 'utf8',
      }).trim() === 'True'
    );
  } catch {
    return false;
  }
})();

try {
  const t0 = performance.now();
  mkdirSync(demoDir, { recursive: true });
  execFileSync(PYTHON, ['-m', 'modelhost', 'make-demo-models', demoDir], { env, stdio: 'ignore' });
  timings['demo models'] = round((performance.now() - t0) / 1000);

  // Against a baseline build, three times the rounds: its verdict is a difference of two p50s, each ±2-3 ms here.
  await piece('gateway-overhead', process.execPath, ['bench/gateway-overhead.mjs', baseline ? '90' : '30', '--trace'], {
    limitS: 300,
    extraEnv: {
      BENCH_OVERHEAD_BUDGET_S: baseline ? '150' : '60',
      ...(baseline && { BASELINE_MAIN: join(baseline, 'main.js') }),
    },
  });
  await piece('status-throughput', process.execPath, ['bench/status-throughput.mjs', '4'], {
    limitS: 180,
    extraEnv: { BENCH_ROUNDS: '3', MODES_FILE: join(demoDir, 'modes.yaml') },
  });
  await piece('queue-throughput', process.execPath, ['bench/queue-throughput.mjs', '100000'], {
    limitS: 120,
    extraEnv: { BENCH_QUEUE_BUDGET_S: '20' },
  });
  if (baseline) {
    // Alternated: a shared machine's neighbours then weigh on both builds alike, and the median of the rounds
    // leaves out the one a neighbour spoiled (two runs of one build differ by 10-20 % on a shared 2-core VM). With
    // the collector's parallel scavenges, one process of either build settles at random into one of two states (each
    // scavenge copying 0.4 MB or 7.7 MB, the engine's CPU 1.7x apart: docs/BENCHMARKS.md, "A fifth time"), which
    // would decide the verdict; on one thread it settles into the first every time.
    for (let round = 1; round <= BASELINE_ROUNDS; round += 1) {
      for (const [build, dist] of [
        ['baseline', baseline],
        ['this', 'dist/apps/gateway'],
      ]) {
        const args = ['--single-threaded-gc', 'bench/queue-throughput.mjs', '20000'];
        await piece(`queue-cpu-${build}-${round}`, process.execPath, args, {
          limitS: 120,
          extraEnv: { GATEWAY_DIST: dist, BENCH_QUEUE_BUDGET_S: '20' },
        });
      }
    }
  }
  await piece('redis-queue', process.execPath, ['bench/redis-queue.mjs', '2000'], { limitS: 120 });
  await piece('reload-latency', process.execPath, ['bench/reload-latency.mjs', '50'], { limitS: 60 });
  await piece('modes-parse', process.execPath, ['bench/modes-parse.mjs', '1000'], { limitS: 60 });
  await piece('engine', PYTHON, ['bench/engine-bench.py', demoDir], {
    limitS: 300,
    extraEnv: { BENCH_ENGINE_ROUNDS: '5', BENCH_ENGINE_BUDGET_S: '120' },
  });
  await piece('scheduler', process.execPath, ['bench/scheduler.mjs'], { limitS: 60, json: false });
  if (process.env.BENCH_SCHEDULER_E2E === '1') {
    // The real-stack variant (the model host's benchmark-only MODELHOST_BENCH_LOAD_DELAY_MS): see its header.
    await piece('scheduler-e2e', process.execPath, ['bench/scheduler.mjs', '--e2e'], { limitS: 300, json: false });
  }
  if (process.env.BENCH_PREFETCH_MAKESPAN === '1') {
    // Two real gateways loading 2.1 GB checkpoints a dozen times each: minutes, so only when asked for.
    await piece('prefetch-makespan', process.execPath, ['bench/prefetch-makespan.mjs'], { limitS: 1200 });
  }
  await piece('batching', process.execPath, ['bench/batching.mjs'], { limitS: 120 });
  if (cuda) {
    await piece('gpu', PYTHON, ['-m', 'modelhost.gpucheck'], { limitS: 300, json: false });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const totalS = round((performance.now() - started) / 1000);
const summary = {
  benchmark: 'bench',
  ...(baseline && { baseline }),
  total_s: totalS,
  limit_s: 600,
  load_average_at_start: loadAtStart,
  cuda,
  timings_s: timings,
  results,
};
const out = writeResult(summary);
console.error(`[bench] all done in ${totalS} s; ${out}`);
publish(JSON.parse(readFileSync(out, 'utf8')));

/** Prints the table of a saved run, and with --write-docs puts it in docs/BENCHMARKS.md between the markers. */
function publish(saved) {
  const table = render({ ...saved, load_average_at_end: saved.load_average });
  console.log(table);
  if (!writeDocs) return;
  const docs = readFileSync('docs/BENCHMARKS.md', 'utf8');
  const begin = '<!-- bench:begin (bench/run.mjs --write-docs replaces this section) -->';
  const end = '<!-- bench:end -->';
  const from = docs.indexOf(begin);
  const to = docs.indexOf(end);
  if (from < 0 || to < from) throw new Error('docs/BENCHMARKS.md has no bench:begin/bench:end markers');
  writeFileSync('docs/BENCHMARKS.md', `${docs.slice(0, from + begin.length)}\n${table}\n${docs.slice(to)}`);
  console.error('[bench] docs/BENCHMARKS.md updated');
}
