// Replicas of a hot mode across model hosts (docs/ARCHITECTURE.md, "Several model hosts"): two model hosts on the
// CPU behind one gateway, a burst of jobs for one mode while the other host holds another mode. With replicas
// (SCHEDULER_REPLICA_AFTER_MS; here 1 s, as the tiny models' jobs are short) the idle host loads the hot mode once
// the burst's oldest job has waited that long, and both serve it; without (the threshold past the whole burst) the
// burst stays on the host that holds the mode. SCHEDULER_MAX_DELAY_MS is set past the burst in both runs, so that
// the scheduler's own bound (an overdue job goes to any free host) does not make replicas of its own. On a CPU
// machine both hosts share the same cores: the wall time says nothing of a GPU per host, the rule's timing does.
//
//   npm run build && node bench/replicas.mjs [JOBS] [STEPS]
import { demoModesFile, round, spawnGateway, writeResult } from './lib.mjs';

const jobs = Number(process.argv[2] ?? 16);
const steps = Number(process.argv[3] ?? 40);
// Not the default mode: every host loads that one at its start, and would hold the hot mode already.
const hot = 'sd15-detail';

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
      SIDECAR_DEVICES: process.env.SIDECAR_DEVICES ?? 'cpu,cpu',
      SCHEDULER_REPLICA_AFTER_MS: String(replicaAfterMs),
      // One job per call: batching would hide the hosts' parallelism behind one call.
      MAX_BATCH: '1',
      SCHEDULER_MAX_DELAY_MS: '3600000',
    },
  });
  try {
    // One host holds the hot mode; the other only the default one.
    await finished(gateway.url, await post(gateway.url, { mode: hot, prompt: 'warm', num_inference_steps: 2 }));
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
    // When the host that did not hold the hot mode started its first job of it (the replica's load included).
    const holder = done[0]?.host;
    const replicaStarts = done.filter((job) => job.host !== holder).map((job) => Date.parse(job.started_at));
    const replicaAfterS =
      replicaStarts.length > 0 ? round((Math.min(...replicaStarts) - Date.parse(done[0].created_at)) / 1000, 2) : null;
    return {
      replica_after_ms: replicaAfterMs,
      wall_s: round(wallMs / 1000, 2),
      jobs_by_host: byHost,
      replica_started_after_s: replicaAfterS,
      failed,
    };
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
  wall_ratio: round(without.wall_s / withReplicas.wall_s, 2),
};
console.log(JSON.stringify(result, null, 2));
console.log(`results: ${writeResult(result)}`);
