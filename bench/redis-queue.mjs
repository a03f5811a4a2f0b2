// The Redis queue backend (QUEUE_BACKEND=redis) against the in-memory one, through the real WorkerPool (from dist/,
// inside the whole AppModule, over an in-memory model host that answers at once): no-op CustomJobs, so what is
// measured is the queue's own cost per job. Then the time from a gateway's death to its job being taken elsewhere
// (a backend that claimed a job and stopped renewing its lock, against one that asks for work).
//
//   npm run build && node bench/redis-queue.mjs [JOBS] [--json FILE]
//
// Needs `redis-server` on PATH (runner.sh installs Debian's); it starts its own on a free port, as the tests do.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

import { startEngine, load } from './engine-fixture.mjs';
import { round, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const JOBS = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 2000);
const jsonFlag = args.indexOf('--json');
const WAVE = 100;
const TAKEOVERS = 5;
const TAKEOVER_LOCK_MS = 2000;

if (spawnSync('redis-server', ['--version']).status !== 0) {
  const why = 'redis-server is not on PATH (runner.sh installs it)';
  writeResult({ benchmark: 'redis-queue', not_run: why }, jsonFlag >= 0 ? args[jsonFlag + 1] : undefined);
  console.error(`${why}: nothing measured`);
  process.exit(0);
}

const { loadConfig } = await load('config/app-config.js');
const { CustomJob } = await load('queue/job.types.js');
const { JobStore } = await load('queue/job.store.js');
const { JobEvents } = await load('queue/job.events.js');
const { RedisJobRecords } = await load('queue/redis-job.records.js');
const { RedisQueueBackend, commandConnection } = await load('queue/redis-queue.backend.js');

async function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

async function startRedis() {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((ready, fail) => {
    let log = '';
    child.stdout.on('data', (chunk) => {
      log += chunk;
      if (log.includes('Ready to accept connections')) ready();
    });
    child.once('exit', (code) => fail(new Error(`redis-server exited (${code})`)));
  });
  child.stdout.resume();
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

async function engine(env) {
  const { pool, close } = await startEngine({ QUEUE_MAX: String(Math.max(JOBS, 1000)), ...env });
  // The shared queue starts in the background: wait until it takes work.
  while (pool.backend.unavailableReason !== undefined) await new Promise((done) => setTimeout(done, 20));
  return {
    submit: async () => (await pool.enqueue(new CustomJob({ handler: 'bench.noop', args: [] }))).result(),
    close,
  };
}

async function inWaves(queue, count) {
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let done = 0; done < count; done += WAVE) {
    await Promise.all(Array.from({ length: Math.min(WAVE, count - done) }, () => queue.submit()));
  }
  const { user, system } = process.cpuUsage(cpu);
  return { ms: performance.now() - started, cpuMs: (user + system) / 1000 };
}

/** A backend that claims a job and dies (stops renewing its lock); how long until another gateway's claim gets it. */
async function takeover(url, prefix) {
  const make = async (origin) => {
    const redis = commandConnection(url);
    await new Promise((ready) => redis.once('ready', ready));
    const store = new JobStore(loadConfig({ LOG_LEVEL: 'silent' }), new JobEvents());
    const records = new RedisJobRecords(store, redis, { prefix, origin, retentionMs: 60_000 });
    const backend = new RedisQueueBackend(
      {
        queueMax: 64,
        queueTimeoutMs: 600_000,
        schedulerMaxDelayMs: 0,
        url,
        prefix,
        lockMs: TAKEOVER_LOCK_MS,
        maxStalledCount: 1,
      },
      records,
      redis,
    );
    await backend.start();
    return backend;
  };
  const [a, b] = [await make('a'), await make('b')];
  const context = (host) => ({ host, activeMode: undefined, now: Date.now() });
  await a.enqueue({
    id: `${prefix}-job`,
    payload: { kind: 'custom', handler: 'x', args: [], host: undefined },
    seed: undefined,
    plan: { activeMode: undefined, now: Date.now() },
  });
  await b.claim(context('b'), { maxBatch: 1 });
  const died = performance.now();
  await b.dispose();
  for (;;) {
    const [job] = await a.claim(context('a'), { maxBatch: 1 });
    if (job) break;
    await new Promise((done) => setTimeout(done, 20));
  }
  const ms = performance.now() - died;
  await a.dispose();
  return ms;
}

const redis = await startRedis();
const rows = [];
try {
  for (const [name, env, jobs] of [
    ['in memory', {}, JOBS],
    ['Redis (one gateway, one host)', { QUEUE_BACKEND: 'redis', REDIS_URL: redis.url, REDIS_PREFIX: 'bench' }, JOBS],
  ]) {
    const queue = await engine(env);
    try {
      await inWaves(queue, WAVE); // warm up
      const { ms, cpuMs } = await inWaves(queue, jobs);
      rows.push({
        backend: name,
        how: `${jobs} no-op jobs in waves of ${WAVE}`,
        jobs,
        ms: round(ms),
        jobs_per_s: Math.round(jobs / (ms / 1000)),
        us_per_job: round((ms * 1000) / jobs),
        gateway_cpu_ms: round(cpuMs),
      });
    } finally {
      await queue.close();
    }
  }
  const takeovers = [];
  for (let i = 0; i < TAKEOVERS; i += 1) takeovers.push(await takeover(redis.url, `takeover${i}`));
  takeovers.sort((x, y) => x - y);
  rows.push({
    backend: 'Redis',
    how: `a gateway dies holding a job (REDIS_LOCK_MS=${TAKEOVER_LOCK_MS}): until another takes it, ${TAKEOVERS} runs`,
    ms_min: round(takeovers[0]),
    ms_median: round(takeovers[Math.floor(TAKEOVERS / 2)]),
    ms_max: round(takeovers[TAKEOVERS - 1]),
  });
} finally {
  redis.stop();
}
const [mem, red] = rows;
const result = {
  benchmark: 'redis-queue',
  what: 'no-op CustomJobs through the WorkerPool over the in-memory and the Redis backend; takeover after a death',
  overhead_ratio: round(red.us_per_job / mem.us_per_job),
  rows,
};
const out = writeResult(result, jsonFlag >= 0 ? args[jsonFlag + 1] : undefined);
console.table(rows);
console.log(`Redis per job / in memory per job: ${result.overhead_ratio}x; written to ${out}`);
process.exit(0);
