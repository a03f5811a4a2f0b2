// Replicas of a hot mode across model hosts (docs/ARCHITECTURE.md, "Several model hosts"): two model hosts on the
// CPU behind one gateway, a burst of jobs for one mode while the other host holds another mode. With replicas
// (SCHEDULER_REPLICA_AFTER_MS, default 10 s; here short, as the tiny models' jobs are short) the idle host loads the
// hot mode too and both serve it; without (the threshold past the whole burst) the burst runs on one host.
//
//   npm run build && node bench/replicas.mjs [JOBS] [STEPS]
import { demoModesFile, round, spawnGateway, writeResult } from './lib.mjs';

const jobs = Number(process.argv[2] ?? 16);
const steps = Number(process.argv[3] ?? 40);
const hot = 'sdxl-general';
const other = 'sd15-fast';

async function post(url, body) {
  const response = await fetch(`${url}/api/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 202) throw new Error(`POST /api/jobs: ${response.status} ${await response.text()}`);
  return (await response.json()).id;
}

async function finished(url, id) {
  for (;;) {
    const job = await (await fetch(`${url}/api/jobs/${id}`)).json();
    if (['completed', 'failed', 'cancelled'].includes(job.state)) return job;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The burst's wall time and which hosts ran it, with replicas after `replicaAfterMs`. */
async function run(replicaAfterMs) {
  const gateway = await spawnGateway({
    env: {
      MODES_FILE: demoModesFile(),
      MODES_WATCH: '0',
      SIDECAR_DEVICES: 'cpu,cpu',
      SCHEDULER_REPLICA_AFTER_MS: String(replicaAfterMs),
      // One job per call: batching would hide the hosts' parallelism behind one call.
      MAX_BATCH: '1',
      LOG_LEVEL: 'warn',
    },
  });
  try {
    // Each host holds one mode: the first the default, the second the other mode.
    const warm = await Promise.all([
      post(gateway.url, { mode: hot, prompt: 'warm', num_inference_steps: 2 }),
      post(gateway.url, { mode: other, prompt: 'warm', num_inference_steps: 2 }),
    ]);
    await Promise.all(warm.map((id) => finished(gateway.url, id)));
    const started = performance.now();
    const ids = [];
    for (let i = 0; i < jobs; i += 1) {
      ids.push(await post(gateway.url, { mode: hot, prompt: `burst ${i}`, seed: i, num_inference_steps: steps }));
    }
    const done = await Promise.all(ids.map((id) => finished(gateway.url, id)));
    const wallMs = performance.now() - started;
    const byHost = {};
    for (const job of done) byHost[job.host] = (byHost[job.host] ?? 0) + 1;
    const failed = done.filter((job) => job.state !== 'completed').length;
    return { replica_after_ms: replicaAfterMs, wall_s: round(wallMs / 1000, 2), jobs_by_host: byHost, failed };
  } finally {
    await gateway.stop();
  }
}

const without = await run(3_600_000);
const withReplicas = await run(1_000);
const result = {
  benchmark: 'replicas',
  jobs,
  steps,
  without_replicas: without,
  with_replicas: withReplicas,
  speedup: round(without.wall_s / withReplicas.wall_s, 2),
};
console.log(JSON.stringify(result, null, 2));
console.log(`results: ${writeResult(result)}`);
