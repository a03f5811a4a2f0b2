import { copyFileSync, cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { startGateway, type Gateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface JobRecord {
  id: string;
  mode: string;
  state: string;
  switch_ms: number | null;
  switch: { from_mode: string | null; to_mode: string; source: string; prefetched: boolean } | null;
}

const MODES = ['a', 'b', 'c'];
/** Long enough on the tiny model that the next mode's build (a fraction of a second) finishes while it runs. */
const STEPS = 25;

/**
 * Prefetch on the real stack: three copies of the tiny SD1.5 file are three modes of one family; the device
 * (MEMORY_CAP_BYTES) holds one pipeline and the RAM tier (RAM_CACHE_BYTES) one more; strict FIFO
 * (SCHEDULER_MAX_DELAY_MS=0) runs a, b, c, a, b, c as queued, each job long enough to hide a load. With prefetch
 * every switch takes the pipeline the model host built while the previous job ran; without it the tier only ever
 * holds the mode left two switches ago, so every switch reads the file again. Generations run on one core
 * (OMP_NUM_THREADS=1), so that the build has the other, as it has the CPU beside a GPU's generation.
 */
describe('prefetch of the next mode', () => {
  let folder: string;
  let unit: number;

  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-prefetch-'));
    const demo = demoDir();
    for (const copy of MODES) copyFileSync(join(demo, 'tiny-sd15.safetensors'), join(folder, `${copy}.safetensors`));
    cpSync(join(demo, 'tiny-sd15.config'), join(folder, 'config'), { recursive: true });
    const mode = (name: string) => ({ model: `${name}.safetensors`, config: 'config', default_size: '64x64' });
    writeFileSync(
      join(folder, 'modes.yaml'),
      dump({ model_root: folder, default_mode: 'a', modes: Object.fromEntries(MODES.map((m) => [m, mode(m)])) }),
    );
    unit = statSync(join(folder, 'a.safetensors')).size;
  });

  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  async function start(prefetch: boolean): Promise<Gateway> {
    return startGateway({
      MODES_FILE: join(folder, 'modes.yaml'),
      MODES_WATCH: '0',
      MEMORY_CAP_BYTES: String(Math.round(unit * 1.5)),
      RAM_CACHE_BYTES: String(Math.round(unit * 1.5)),
      SCHEDULER_MAX_DELAY_MS: '0',
      PREFETCH: prefetch ? '1' : '0',
      // The generation on one core, as a GPU's would leave the CPU to the build: with torch on every core, the
      // build (at the lowest priority) only runs once the generation ends, and the switch waits for it.
      OMP_NUM_THREADS: '1',
    });
  }

  async function post(gateway: Gateway, mode: string): Promise<string> {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: `a ${mode}`, mode, num_inference_steps: STEPS, seed: 1 }),
    });
    expect(response.status).toBe(202);
    return ((await response.json()) as { id: string }).id;
  }

  async function record(gateway: Gateway, id: string): Promise<JobRecord> {
    return (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as JobRecord;
  }

  /** Queues a, b, c, a, b, c at once and answers their records once all completed. */
  async function rounds(gateway: Gateway): Promise<JobRecord[]> {
    const ids: string[] = [];
    for (const mode of [...MODES, ...MODES]) ids.push(await post(gateway, mode));
    await waitFor(async () => (await record(gateway, ids.at(-1) as string)).state === 'completed', {
      what: 'the six jobs to complete',
      timeoutMs: 240_000,
      context: gateway.logs,
    });
    const records = await Promise.all(ids.map((id) => record(gateway, id)));
    expect(records.map((job) => job.state)).toEqual(Array(6).fill('completed'));
    return records;
  }

  it('without it (PREFETCH=0), every switch reads its file again: the tier holds the mode left two switches ago', async () => {
    const gateway = await start(false);
    try {
      const records = await rounds(gateway);
      // a is active from the start: the first job does not switch.
      const switched = records.slice(1);
      expect(switched.map((job) => [job.switch?.source, job.switch?.prefetched])).toEqual(
        Array(5).fill(['disk', false]),
      );
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  }, 300_000);

  it('with it, every switch after the first round takes the pipeline built while the previous job ran', async () => {
    const gateway = await start(true);
    try {
      const records = await rounds(gateway);
      const secondRound = records.slice(3);
      expect(secondRound.map((job) => [job.mode, job.switch?.source, job.switch?.prefetched])).toEqual([
        ['a', 'ram', true],
        ['b', 'ram', true],
        ['c', 'ram', true],
      ]);
      // How much faster such a switch is, is a benchmark's to say (docs/BENCHMARKS.md), not a test's.
      await gateway.logged(/prefetched\)/);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  }, 300_000);
});
