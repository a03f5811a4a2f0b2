import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { parsePrometheusText, sampleSum, sampleValue, type Sample } from './support/prometheus-text';
import { waitFor } from './support/wait-for';

interface Job {
  id: string;
  state: string;
  progress: { step: number } | null;
  switch: { from_mode: string | null; to_mode: string; source: string } | null;
  error: { error: string } | null;
}

const FINAL = ['completed', 'failed', 'cancelled'];

/**
 * GET /metrics on the real gateway and model host: a completed job, a job whose turn switches modes, a cancelled
 * and a failed one each move exactly the counters and histogram counts they should, and nothing else.
 *
 * The modes: the tiny SD1.5 checkpoint bare (the default), with its LoRA (a switch that only attaches the LoRA to
 * the resident base: `shared-base`), and with a LoRA file that is no safetensors file (its load fails on the model
 * host: a real load failure that costs no model load).
 */
describe('Prometheus metrics', () => {
  let gateway: Gateway;
  let loras: string;

  beforeAll(async () => {
    const demo = demoDir();
    loras = mkdtempSync(join(tmpdir(), 'e2e-metrics-'));
    copyFileSync(join(demo, 'loras', 'tiny-sd15-lora.safetensors'), join(loras, 'detail.safetensors'));
    writeFileSync(join(loras, 'broken.safetensors'), 'not a safetensors file');
    const sd15 = { model: 'tiny-sd15.safetensors', config: 'tiny-sd15.config', default_size: '64x64' };
    const modesFile = join(loras, 'modes.yaml');
    writeFileSync(
      modesFile,
      dump({
        model_root: demo,
        lora_root: loras,
        default_mode: 'plain',
        modes: {
          plain: sd15,
          detail: { ...sd15, loras: ['detail.safetensors'] },
          broken: { ...sd15, loras: ['broken.safetensors'] },
        },
      }),
    );
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0' });
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(loras, { recursive: true, force: true });
  });

  async function scrape(): Promise<Sample[]> {
    const response = await fetch(`${gateway.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await response.text());
  }

  /**
   * Every counter and histogram count of ours that moved, by how much. GET requests are left out: the test's own
   * polling and scrapes make them.
   */
  function moved(before: Sample[], after: Sample[]): Record<string, number> {
    const counted = (sample: Sample): boolean =>
      sample.name.startsWith('imagegen_') &&
      (sample.name.endsWith('_total') || sample.name.endsWith('_count')) &&
      sample.labels.method !== 'GET';
    const key = (sample: Sample): string =>
      `${sample.name}{${Object.entries(sample.labels)
        .map(([name, value]) => `${name}=${value}`)
        .join(',')}}`;
    const was = new Map(before.filter(counted).map((sample) => [key(sample), sample.value]));
    const changes: Record<string, number> = {};
    for (const sample of after.filter(counted)) {
      const delta = sample.value - (was.get(key(sample)) ?? 0);
      if (delta !== 0) changes[key(sample)] = delta;
    }
    return changes;
  }

  async function submit(body: object): Promise<Job> {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse', seed: 4, ...body }),
    });
    expect(response.status).toBe(202);
    return (await response.json()) as Job;
  }

  async function job(id: string): Promise<Job> {
    return (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as Job;
  }

  const finished = (id: string): Promise<Job> =>
    waitFor(
      async () => {
        const record = await job(id);
        return FINAL.includes(record.state) && record;
      },
      { what: `job ${id} to finish`, context: gateway.logs },
    );

  it('reports the model host, its memory and the resident model once serving', async () => {
    const samples = await scrape();
    // One model host: one sample each, labelled with its host's id.
    const up = samples.filter((sample) => sample.name === 'imagegen_model_host_up');
    expect(up.map((sample) => [Object.keys(sample.labels), sample.value])).toEqual([[['host'], 1]]);
    expect(sampleSum(samples, 'imagegen_device_memory_total_bytes', { device: 'cpu' })).toBeGreaterThan(0);
    expect(sampleSum(samples, 'imagegen_device_memory_used_bytes', { device: 'cpu' })).toBeGreaterThan(0);
    expect(sampleSum(samples, 'imagegen_model_resident_bytes', { mode: 'plain', tier: 'device' })).toBeGreaterThan(0);
    expect(sampleValue(samples, 'imagegen_queue_jobs', { state: 'queued' })).toBe(0);
    expect(sampleValue(samples, 'imagegen_queue_jobs', { state: 'running' })).toBe(0);
    // The default process metrics are there too, under their standard names.
    expect(sampleValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('counts a completed job on the active mode: no switch, no load', async () => {
    const before = await scrape();
    const done = await finished((await submit({ mode: 'plain', num_inference_steps: 2 })).id);
    expect(done).toMatchObject({ state: 'completed', switch: null });
    expect(moved(before, await scrape())).toEqual({
      'imagegen_jobs_total{kind=generation,outcome=completed}': 1,
      'imagegen_job_queue_wait_seconds_count{mode=plain}': 1,
      'imagegen_generation_duration_seconds_count{mode=plain}': 1,
      'imagegen_http_requests_total{method=POST,route=/api/jobs,status=202}': 1,
    });
  });

  it('counts a switching job: the switch by its source, and the load', async () => {
    const before = await scrape();
    const done = await finished((await submit({ mode: 'detail', num_inference_steps: 2 })).id);
    expect(done).toMatchObject({
      state: 'completed',
      switch: { from_mode: 'plain', to_mode: 'detail', source: 'shared-base' },
    });
    const after = await scrape();
    expect(moved(before, after)).toEqual({
      'imagegen_jobs_total{kind=generation,outcome=completed}': 1,
      'imagegen_job_queue_wait_seconds_count{mode=detail}': 1,
      'imagegen_generation_duration_seconds_count{mode=detail}': 1,
      'imagegen_mode_switch_duration_seconds_count{source=shared-base}': 1,
      'imagegen_model_loads_total{source=shared-base}': 1,
      'imagegen_http_requests_total{method=POST,route=/api/jobs,status=202}': 1,
    });
    expect(sampleSum(after, 'imagegen_model_resident_bytes', { mode: 'detail' })).toBeGreaterThan(0);
  });

  it('counts a cancelled job, and shows it running in the queue depth until then', async () => {
    const long = await submit({ mode: 'detail', num_inference_steps: 150 });
    await waitFor(async () => ((await job(long.id)).progress?.step ?? 0) >= 1, {
      what: 'the long job to make a step',
      context: gateway.logs,
    });
    const before = await scrape();
    expect(sampleValue(before, 'imagegen_queue_jobs', { state: 'running' })).toBe(1);
    expect(sampleValue(before, 'imagegen_queue_jobs', { state: 'queued' })).toBe(0);

    expect((await fetch(`${gateway.url}/api/jobs/${long.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await finished(long.id)).toMatchObject({ state: 'cancelled', switch: null });
    const after = await scrape();
    expect(moved(before, after)).toEqual({
      'imagegen_jobs_total{kind=generation,outcome=cancelled}': 1,
      'imagegen_http_requests_total{method=DELETE,route=/api/jobs/:id,status=200}': 1,
    });
    expect(sampleValue(after, 'imagegen_queue_jobs', { state: 'running' })).toBe(0);
  });

  it('counts a failed job and its failed load, and no load', async () => {
    const before = await scrape();
    const failed = await finished((await submit({ mode: 'broken', num_inference_steps: 2 })).id);
    expect(failed.state).toBe('failed');
    expect(moved(before, await scrape())).toEqual({
      'imagegen_jobs_total{kind=generation,outcome=failed}': 1,
      'imagegen_job_queue_wait_seconds_count{mode=broken}': 1,
      'imagegen_model_load_failures_total{mode=broken}': 1,
      'imagegen_http_requests_total{method=POST,route=/api/jobs,status=202}': 1,
    });
  });
});
