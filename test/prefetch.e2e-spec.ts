import { copyFileSync, cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { openEventStream, type EventStream, type StreamEvent } from './support/event-stream';
import { startGateway, type Gateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface JobRecord {
  id: string;
  mode: string;
  state: string;
  switch_ms: number | null;
  switch: { from_mode: string | null; to_mode: string; source: string; prefetched: boolean } | null;
}

interface MemoryData {
  ram_tier_bytes: number;
  models: { mode: string; tier: string; bytes: number }[];
}

const MODES = ['a', 'b', 'c'];
/** A fourth mode, for a queue that names more modes than one hint carries (two a host). */
const EXTRA = 'd';
/** Longer than the test needs it to run (the most a job may ask): it is cancelled once it is no longer needed. */
const LONG_STEPS = 1000;
/** Long enough on the tiny model that the next mode's build (a fraction of a second) finishes while it runs. */
const STEPS = 25;

/**
 * Prefetch on the real stack: three copies of the tiny SD1.5 file are three modes of one family; the device
 * (MEMORY_CAP_BYTES) holds one pipeline and the RAM tier (RAM_CACHE_BYTES) one more; strict FIFO
 * (SCHEDULER_MAX_DELAY_MS=0) runs a, b, c, a, b, c as queued, each job long enough to hide a load. With prefetch
 * every switch takes the pipeline the model host built while the previous job ran; without it the tier only ever
 * holds the mode left two switches ago, so every switch reads the file again. A job cancelled from the plan takes
 * its prefetch with it: the tier's bytes (`ram_tier_bytes` in the `memory` events, which count a prefetch though it is
 * no loaded key) fall back. And a prefetch never costs a queued job what the tier holds for it: a mode parked there
 * stays parked while the tier makes room for hinted modes. Generations run on one core (OMP_NUM_THREADS=1), so that
 * the build has the other, as it has the CPU beside a GPU's generation.
 */
describe('prefetch of the next mode', () => {
  let folder: string;
  let unit: number;

  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-prefetch-'));
    const demo = demoDir();
    for (const copy of [...MODES, EXTRA])
      copyFileSync(join(demo, 'tiny-sd15.safetensors'), join(folder, `${copy}.safetensors`));
    cpSync(join(demo, 'tiny-sd15.config'), join(folder, 'config'), { recursive: true });
    const mode = (name: string) => ({ model: `${name}.safetensors`, config: 'config', default_size: '64x64' });
    writeFileSync(
      join(folder, 'modes.yaml'),
      dump({
        model_root: folder,
        default_mode: 'a',
        modes: Object.fromEntries([...MODES, EXTRA].map((m) => [m, mode(m)])),
      }),
    );
    unit = statSync(join(folder, 'a.safetensors')).size;
  });

  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** `tierUnits`: the RAM tier's room in pipelines (and a half). */
  async function start(prefetch: boolean, tierUnits = 1.5): Promise<Gateway> {
    return startGateway({
      MODES_FILE: join(folder, 'modes.yaml'),
      MODES_WATCH: '0',
      MEMORY_CAP_BYTES: String(Math.round(unit * 1.5)),
      RAM_CACHE_BYTES: String(Math.round(unit * tierUnits)),
      SCHEDULER_MAX_DELAY_MS: '0',
      PREFETCH: prefetch ? '1' : '0',
      // The generation on one core, as a GPU's would leave the CPU to the build: with torch on every core, the
      // build (at the lowest priority) only runs once the generation ends, and the switch waits for it.
      OMP_NUM_THREADS: '1',
    });
  }

  async function post(gateway: Gateway, mode: string, steps = STEPS): Promise<string> {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: `a ${mode}`, mode, num_inference_steps: steps, seed: 1 }),
    });
    expect(response.status).toBe(202);
    return ((await response.json()) as { id: string }).id;
  }

  async function record(gateway: Gateway, id: string): Promise<JobRecord> {
    return (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as JobRecord;
  }

  async function cancel(gateway: Gateway, id: string): Promise<JobRecord> {
    const response = await fetch(`${gateway.url}/api/jobs/${id}`, { method: 'DELETE' });
    expect(response.status).toBe(200);
    return (await response.json()) as JobRecord;
  }

  async function completed(gateway: Gateway, id: string, what: string): Promise<void> {
    await waitFor(async () => (await record(gateway, id)).state === 'completed', {
      what,
      timeoutMs: 240_000,
      context: gateway.logs,
    });
  }

  /** The first `memory` event from the stream's `from`th event on that `match` accepts. */
  function memory(stream: EventStream, from: number, match: (data: MemoryData) => boolean): Promise<StreamEvent> {
    return stream.next(
      (event) => event.type === 'memory' && stream.events.indexOf(event) >= from && match(event.data as never),
    );
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

  it('a job cancelled from the plan drops its prefetch: the RAM tier lets go of the pipeline built for it', async () => {
    const gateway = await start(true);
    const stream = await openEventStream(`${gateway.url}/api/events`);
    try {
      // a is on the device from the start. While its job runs the model host's figures are read every second.
      const running = await post(gateway, 'a', LONG_STEPS);
      const cancelled = await post(gateway, 'b');
      // b's pipeline is built into the tier: bytes there that no loaded key holds are the prefetch's.
      const built = await memory(stream, 0, (data) => data.ram_tier_bytes > 0);
      expect((built.data as unknown as MemoryData).models.map(({ mode, tier }) => [mode, tier])).toEqual([
        ['a', 'device'],
      ]);
      expect((await record(gateway, running)).state).toBe('running');

      const mark = stream.events.length;
      expect((await cancel(gateway, cancelled)).state).toBe('cancelled');
      await memory(stream, mark, (data) => data.ram_tier_bytes === 0);
      // Dropped because the plan no longer wants it: a's job still runs, and nothing loaded b.
      expect((await record(gateway, running)).state).toBe('running');
      expect(stream.events.filter((event) => event.type === 'model.loaded' && event.data.mode === 'b')).toEqual([]);
      await cancel(gateway, running);
    } finally {
      stream.close();
      expect(await gateway.stop()).toBe(0);
    }
  }, 300_000);

  it('nothing queued is evicted for a prefetch: a mode the tier holds stays there until its job takes it', async () => {
    // The tier has room for two pipelines; a hint names two modes.
    const gateway = await start(true, 2.5);
    const stream = await openEventStream(`${gateway.url}/api/events`);
    const listing = (data: MemoryData) => data.models.map(({ mode, tier }) => `${mode} ${tier}`).sort();
    try {
      // b to the tier: a job on it, then one on a, which parks b.
      await post(gateway, 'b', 1);
      await completed(gateway, await post(gateway, 'a', 1), 'the jobs on b then a to complete');
      const parked = await memory(stream, 0, (data) => listing(data).join() === 'a device,b ram');
      const pipeline = (parked.data as unknown as MemoryData).models[0].bytes;

      // Queued: a, c, d, then b. While a runs, c and d are hinted and c is built beside b; b is a third mode, which
      // the hint (two modes a host) does not reach. Each long job is cancelled once the tier holds what it should.
      const mark = stream.events.length;
      const queue: [string, number][] = [
        ['a', LONG_STEPS],
        ['c', LONG_STEPS],
        ['d', 1],
        ['b', 1],
      ];
      const ids: string[] = [];
      for (const [mode, steps] of queue) ids.push(await post(gateway, mode, steps));
      await memory(stream, mark, (data) => data.ram_tier_bytes >= 2 * pipeline);
      await cancel(gateway, ids[0]);
      // The switch to c takes its prefetch and evicts a. The tier keeps room for d, built while c runs: that room must
      // come out of a, never out of b.
      const loaded = await stream.next((event) => event.type === 'model.loaded' && event.data.mode === 'c');
      await memory(
        stream,
        stream.events.indexOf(loaded),
        (data) => listing(data).includes('c device') && data.ram_tier_bytes >= 2 * pipeline,
      );
      await cancel(gateway, ids[1]);
      await completed(gateway, ids[3], 'the jobs on d and b to complete');

      const records = await Promise.all(ids.map((id) => record(gateway, id)));
      expect(
        records.map((job) => [job.mode, job.state, job.switch && [job.switch.source, job.switch.prefetched]]),
      ).toEqual([
        ['a', 'cancelled', null],
        ['c', 'cancelled', ['ram', true]],
        ['d', 'completed', ['ram', true]],
        // Taken from where it was parked, not built again.
        ['b', 'completed', ['ram', false]],
      ]);
      // In the tier in every reading of the figures until its job started (they are read every second while jobs
      // run); a prefetched base is no loaded key, so one built again would be missing from these.
      const started = stream.events.findIndex((event) => event.type === 'job.started' && event.data.id === ids[3]);
      expect(started).toBeGreaterThan(mark);
      const readings = stream.events.slice(mark, started).filter((event) => event.type === 'memory');
      expect(readings.length).toBeGreaterThan(0);
      expect(
        readings
          .map((event) => (event.data as unknown as MemoryData).models)
          .filter((models) => !models.some(({ mode, tier }) => mode === 'b' && tier === 'ram')),
      ).toEqual([]);
    } finally {
      stream.close();
      expect(await gateway.stop()).toBe(0);
    }
  }, 300_000);
});
