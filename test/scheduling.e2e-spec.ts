import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { load } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface Job {
  id: string;
  mode: string;
  state: string;
  started_at: string | null;
  finished_at: string | null;
  switch: { from_mode: string | null; to_mode: string; source: string } | null;
}

const JOBS = 40;

/** Two modes of the demo models: the default one and another on a different checkpoint. */
function twoModes(): [string, string] {
  const modes = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as {
    default_mode: string;
    modes: Record<string, { model: string }>;
  };
  const first = modes.default_mode;
  const other = Object.entries(modes.modes).find(([, mode]) => mode.model !== modes.modes[first]?.model)?.[0];
  if (other === undefined) throw new Error('the demo models need two checkpoints');
  return [first, other];
}

/**
 * Posts JOBS one-step generations alternating between the two modes, all queued before any runs, and waits until
 * every one has ended.
 */
async function runAlternating(gateway: Gateway): Promise<Job[]> {
  const [a, b] = twoModes();
  const post = async (body: object): Promise<string> => {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(202);
    return ((await response.json()) as Job).id;
  };
  const get = async (id: string): Promise<Job> => (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as Job;
  // A long job in the active mode holds the device until all are queued: a one-step job is done in a fraction of
  // a second, and a worker that took them as they came would switch as often as the loop below lags behind it.
  const blocker = await post({ prompt: 'holds the device', mode: a, num_inference_steps: 1000 });
  await waitFor(async () => (await get(blocker)).state === 'running', {
    what: 'the long job to hold the device',
    context: gateway.logs,
  });
  const ids: string[] = [];
  // One after the other, so that submission order is the order of i.
  for (let i = 0; i < JOBS; i += 1) {
    ids.push(await post({ prompt: `job ${i}`, mode: i % 2 === 0 ? a : b, num_inference_steps: 1, seed: i }));
  }
  expect((await fetch(`${gateway.url}/api/jobs/${blocker}`, { method: 'DELETE' })).status).toBe(200);
  return waitFor(
    async () => {
      const jobs = await Promise.all(ids.map(get));
      return jobs.every((job) => ['completed', 'failed', 'cancelled'].includes(job.state)) && jobs;
    },
    { what: `all ${JOBS} jobs to end`, timeoutMs: 300_000, context: gateway.logs },
  );
}

describe('scheduling 40 jobs alternating between two modes, end to end', () => {
  let gateway: Gateway | undefined;

  afterEach(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
  });

  it('groups them by mode with a large SCHEDULER_MAX_DELAY_MS: at most 14 switch', async () => {
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      SCHEDULER_MAX_DELAY_MS: '3600000',
    });
    const jobs = await runAlternating(gateway);
    expect(jobs.map((job) => job.state)).toEqual(Array(JOBS).fill('completed'));
    const switched = jobs.filter((job) => job.switch !== null);
    expect(switched.length).toBeLessThanOrEqual(14);
    for (const job of switched) {
      expect(job.switch?.to_mode).toBe(job.mode);
      expect(['resident', 'shared-base', 'ram', 'disk']).toContain(job.switch?.source);
    }
  }, 400_000);

  it('runs them in submission order with SCHEDULER_MAX_DELAY_MS=0', async () => {
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      SCHEDULER_MAX_DELAY_MS: '0',
    });
    const jobs = await runAlternating(gateway);
    expect(jobs.map((job) => job.state)).toEqual(Array(JOBS).fill('completed'));
    // One job at a time: each one submitted later starts only once the one before it has finished.
    for (let i = 1; i < JOBS; i += 1) {
      const before = Date.parse(jobs[i - 1]?.finished_at ?? '');
      const after = Date.parse(jobs[i]?.started_at ?? '');
      expect(after).toBeGreaterThanOrEqual(before);
    }
    expect(jobs.filter((job) => job.switch !== null).length).toBeGreaterThan(14);
  }, 400_000);
});
