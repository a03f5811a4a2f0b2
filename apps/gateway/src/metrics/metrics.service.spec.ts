import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { JobEvents, type JobEvent } from '../queue/job.events.js';
import type { JobSnapshot } from '../queue/job-record.types.js';
import { EventBus } from '../events/event-bus.js';
import type { ModelBusEvent } from '../events/event.types.js';
import type { ResidentEntry } from '../registry/registry.service.js';
import type { ModelHostState } from '../model-host/model-host.connection.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import { MetricsService } from './metrics.service.js';

const record = (extra: Partial<JobSnapshot> = {}): JobSnapshot => ({
  id: 'j1',
  kind: 'generation',
  mode: 'fast',
  state: 'queued',
  progress: null,
  seed: 1,
  created_ms: Date.UTC(2026, 11, 2),
  started_ms: null,
  finished_ms: null,
  queue_ms: null,
  switch_ms: null,
  generate_ms: null,
  switch: null,
  error: null,
  host: null,
  owner: null,
  ...extra,
});

const START = Date.UTC(2026, 11, 2, 0, 0, 2);

const MEMORY: MemoryStats = {
  device: 'cuda:0',
  deviceName: 'GPU',
  totalBytes: 8_000,
  usedBytes: 3_000,
  availableBytes: 5_000,
  models: [],
  reserveBytes: 0,
  ramTierBytes: 0,
  ramTierCapacityBytes: 0,
};

describe('MetricsService', () => {
  let jobs: JobEvents;
  let bus: EventBus;
  let memory: MemoryStats | undefined;
  let resident: ResidentEntry[];
  let state: ModelHostState;
  let metrics: MetricsService;

  beforeEach(() => {
    bus = new EventBus();
    jobs = new JobEvents(bus);
    memory = undefined;
    resident = [];
    state = 'starting';
    metrics = new MetricsService(
      {
        onEvent: (listener, types) => bus.subscribe(listener, types),
        hosts: () => [{ id: 'gw/cuda:0', lastMemory: memory, residentModels: resident, state }],
      },
      { defaultMetrics: false },
    );
  });

  afterEach(() => metrics.onModuleDestroy());

  /** Every sample of one metric as `labels -> value` (labels as `k=v` joined by commas, sorted). */
  async function samples(name: string): Promise<Record<string, number>> {
    const metric = metrics.registry.getSingleMetric(name);
    if (!metric) throw new Error(`no metric ${name}`);
    const out: Record<string, number> = {};
    for (const value of (await metric.get()).values) {
      const labels = Object.entries(value.labels)
        .map(([k, v]) => `${k}=${String(v)}`)
        .sort()
        .join(',');
      out[`${(value as { metricName?: string }).metricName ?? name}{${labels}}`] = value.value;
    }
    return out;
  }

  /** The samples that counted something: the known label sets start at 0 (see the test of that). */
  async function counted(name: string): Promise<Record<string, number>> {
    return Object.fromEntries(Object.entries(await samples(name)).filter(([, value]) => value !== 0));
  }

  it('starts the counters of known label sets at 0: finished jobs, loads by source, evictions by reason', async () => {
    expect(await samples('imagegen_model_loads_total')).toEqual({
      'imagegen_model_loads_total{source=resident}': 0,
      'imagegen_model_loads_total{source=shared-base}': 0,
      'imagegen_model_loads_total{source=ram}': 0,
      'imagegen_model_loads_total{source=disk}': 0,
    });
    expect(await samples('imagegen_model_evictions_total')).toEqual({
      'imagegen_model_evictions_total{reason=make-room}': 0,
      'imagegen_model_evictions_total{reason=oom-retry}': 0,
      'imagegen_model_evictions_total{reason=unload}': 0,
      'imagegen_model_evictions_total{reason=keep-alive}': 0,
      'imagegen_model_evictions_total{reason=stale}': 0,
    });
    expect(Object.keys(await samples('imagegen_jobs_total'))).toHaveLength(9);
    expect(await counted('imagegen_jobs_total')).toEqual({});
  });

  const emit = (event: JobEvent): void => jobs.emit(event);
  const model = (event: ModelBusEvent): void => void bus.publish(event);
  const HOST = 'local/cpu';

  it('counts the queue by state from the job events, and finished jobs by kind and outcome', async () => {
    emit({ type: 'queued', job: record({ id: 'a' }) });
    emit({ type: 'queued', job: record({ id: 'b' }) });
    emit({ type: 'queued', job: record({ id: 'c', kind: 'mode-switch' }) });
    emit({ type: 'started', job: record({ id: 'a', state: 'running', started_ms: START, queue_ms: 1500 }) });
    expect(await samples('imagegen_queue_jobs')).toEqual({
      'imagegen_queue_jobs{state=queued}': 2,
      'imagegen_queue_jobs{state=running}': 1,
    });

    const ran = { started_ms: START, queue_ms: 1500, generate_ms: 250 };
    emit({ type: 'completed', job: record({ id: 'a', state: 'completed', ...ran }) });
    emit({ type: 'cancelled', job: record({ id: 'b', state: 'cancelled', queue_ms: 10 }) });
    emit({ type: 'failed', job: record({ id: 'c', kind: 'mode-switch', state: 'failed', queue_ms: 3 }) });
    expect(await samples('imagegen_queue_jobs')).toEqual({
      'imagegen_queue_jobs{state=queued}': 0,
      'imagegen_queue_jobs{state=running}': 0,
    });
    expect(await counted('imagegen_jobs_total')).toEqual({
      'imagegen_jobs_total{kind=generation,outcome=completed}': 1,
      'imagegen_jobs_total{kind=generation,outcome=cancelled}': 1,
      'imagegen_jobs_total{kind=mode-switch,outcome=failed}': 1,
    });
  });

  it('observes queue wait when a job starts and generation time when it completes, in seconds by mode', async () => {
    emit({ type: 'started', job: record({ id: 'a', queue_ms: 1500 }) });
    emit({ type: 'started', job: record({ id: 'x', kind: 'custom', mode: null, queue_ms: 20 }) });
    emit({ type: 'completed', job: record({ id: 'a', queue_ms: 1500, generate_ms: 250 }) });
    // A failed generation's time is no generation time; a custom job has none.
    emit({ type: 'failed', job: record({ id: 'f', queue_ms: 1, generate_ms: 999 }) });
    emit({ type: 'completed', job: record({ id: 'x', kind: 'custom', mode: null, queue_ms: 20 }) });

    const wait = await samples('imagegen_job_queue_wait_seconds');
    expect(wait['imagegen_job_queue_wait_seconds_count{mode=fast}']).toBe(1);
    expect(wait['imagegen_job_queue_wait_seconds_sum{mode=fast}']).toBeCloseTo(1.5, 9);
    expect(wait['imagegen_job_queue_wait_seconds_bucket{le=1,mode=fast}']).toBe(0);
    expect(wait['imagegen_job_queue_wait_seconds_bucket{le=2.5,mode=fast}']).toBe(1);
    expect(wait['imagegen_job_queue_wait_seconds_count{mode=}']).toBe(1);

    const generation = await samples('imagegen_generation_duration_seconds');
    expect(generation['imagegen_generation_duration_seconds_count{mode=fast}']).toBe(1);
    expect(generation['imagegen_generation_duration_seconds_sum{mode=fast}']).toBeCloseTo(0.25, 9);
    expect(Object.keys(generation).filter((key) => key.includes('_count'))).toHaveLength(1);
  });

  it("observes a switch made in a job's turn by its source, whatever the job's outcome", async () => {
    const change = (source: 'disk' | 'ram') => ({ from_mode: 'a', to_mode: 'b', source, prefetched: false });
    emit({ type: 'completed', job: record({ id: '1', switch: change('disk'), switch_ms: 4000, generate_ms: 5 }) });
    emit({ type: 'cancelled', job: record({ id: '2', switch: change('ram'), switch_ms: 100 }) });
    emit({ type: 'completed', job: record({ id: '3', generate_ms: 5 }) });
    const switches = await samples('imagegen_mode_switch_duration_seconds');
    expect(switches['imagegen_mode_switch_duration_seconds_count{source=disk}']).toBe(1);
    expect(switches['imagegen_mode_switch_duration_seconds_sum{source=disk}']).toBeCloseTo(4, 9);
    expect(switches['imagegen_mode_switch_duration_seconds_count{source=ram}']).toBe(1);
    expect(Object.keys(switches).filter((key) => key.includes('_count'))).toHaveLength(2);
  });

  it('counts loads by source, evictions from the device by reason and load failures by mode from the model events', async () => {
    const loaded = { type: 'model.loaded', host: HOST, tier: 'device', bytes: 10, prefetched: false } as const;
    const evicted = { type: 'model.evicted', host: HOST, tier: null, bytes: 10 } as const;
    model({ ...loaded, key: 'a-1', mode: 'a', source: 'disk' });
    model({ ...loaded, key: 'b-1', mode: 'b', source: 'shared-base' });
    model({ ...loaded, key: 'a-1', mode: 'a', source: 'disk' });
    model({ ...loaded, key: 'c-1', mode: 'c', source: 'ram', prefetched: true });
    model({ ...evicted, key: 'a-1', mode: 'a', reason: 'make-room' });
    model({ ...evicted, key: 'b-1', mode: 'b', reason: 'oom-retry' });
    model({ ...evicted, key: 'c-1', mode: 'c', reason: 'keep-alive' });
    // Dropped from the RAM tier: it left the device before (counted then), not now.
    model({ ...evicted, key: 'b-1', mode: 'b', reason: 'ram-full' });
    model({
      type: 'model.load_failed',
      host: HOST,
      mode: 'broken',
      key: null,
      tier: null,
      bytes: null,
      reason: 'no',
    });
    expect(await counted('imagegen_model_loads_total')).toEqual({
      'imagegen_model_loads_total{source=disk}': 2,
      'imagegen_model_loads_total{source=ram}': 1,
      'imagegen_model_loads_total{source=shared-base}': 1,
    });
    expect(await counted('imagegen_model_prefetched_loads_total')).toEqual({
      'imagegen_model_prefetched_loads_total{}': 1,
    });
    expect(await counted('imagegen_model_evictions_total')).toEqual({
      'imagegen_model_evictions_total{reason=make-room}': 1,
      'imagegen_model_evictions_total{reason=oom-retry}': 1,
      'imagegen_model_evictions_total{reason=keep-alive}': 1,
    });
    expect(await samples('imagegen_model_load_failures_total')).toEqual({
      'imagegen_model_load_failures_total{mode=broken}': 1,
    });
  });

  it('reads memory, resident models and the model host state at scrape time, with no sample while unknown', async () => {
    expect(await samples('imagegen_device_memory_total_bytes')).toEqual({});
    expect(await samples('imagegen_model_host_up')).toEqual({ 'imagegen_model_host_up{host=gw/cuda:0}': 0 });

    memory = MEMORY;
    resident = [
      { key: 'a-1', mode: 'a', bytes: 2_000, architecture: 'sd15', tier: 'device' },
      { key: 'b-1', mode: 'b', bytes: 1_000, architecture: 'sdxl-base', tier: 'ram' },
    ];
    state = 'serving';
    expect(await samples('imagegen_device_memory_total_bytes')).toEqual({
      'imagegen_device_memory_total_bytes{device=cuda:0,host=gw/cuda:0}': 8_000,
    });
    expect(await samples('imagegen_device_memory_used_bytes')).toEqual({
      'imagegen_device_memory_used_bytes{device=cuda:0,host=gw/cuda:0}': 3_000,
    });
    expect(await samples('imagegen_model_resident_bytes')).toEqual({
      'imagegen_model_resident_bytes{host=gw/cuda:0,key=a-1,mode=a,tier=device}': 2_000,
      'imagegen_model_resident_bytes{host=gw/cuda:0,key=b-1,mode=b,tier=ram}': 1_000,
    });
    expect(await samples('imagegen_model_host_up')).toEqual({ 'imagegen_model_host_up{host=gw/cuda:0}': 1 });

    // An evicted model's series goes with it; a lost model host is down and has no figures.
    resident = [resident[0]];
    memory = undefined;
    state = 'lost';
    expect(Object.keys(await samples('imagegen_model_resident_bytes'))).toEqual([
      'imagegen_model_resident_bytes{host=gw/cuda:0,key=a-1,mode=a,tier=device}',
    ]);
    expect(await samples('imagegen_device_memory_used_bytes')).toEqual({});
    expect(await samples('imagegen_model_host_up')).toEqual({ 'imagegen_model_host_up{host=gw/cuda:0}': 0 });
  });

  it('counts HTTP requests by method, route pattern and status', async () => {
    metrics.countHttpRequest({ method: 'GET', route: '/api/jobs/:id', status: 200 });
    metrics.countHttpRequest({ method: 'GET', route: '/api/jobs/:id', status: 200 });
    metrics.countHttpRequest({ method: 'GET', route: '/api/jobs/:id', status: 404 });
    expect(await samples('imagegen_http_requests_total')).toEqual({
      'imagegen_http_requests_total{method=GET,route=/api/jobs/:id,status=200}': 2,
      'imagegen_http_requests_total{method=GET,route=/api/jobs/:id,status=404}': 1,
    });
  });

  it('stops listening when destroyed', async () => {
    metrics.onModuleDestroy();
    emit({ type: 'completed', job: record() });
    model({
      ...{ type: 'model.loaded', host: HOST, key: 'a-1', mode: 'a', tier: 'device' },
      source: 'disk',
      bytes: 10,
      prefetched: false,
    });
    expect(await counted('imagegen_jobs_total')).toEqual({});
    expect(await counted('imagegen_model_loads_total')).toEqual({});
  });

  it('writes the exposition text, every metric in the README with its type', async () => {
    const text = await metrics.scrape();
    const readme = readFileSync(resolve(import.meta.dirname, '../../../../README.md'), 'utf8');
    const section = /### Metrics\n([\s\S]*?)\n### /.exec(readme)?.[1] ?? '';
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      // A table row, however a formatter pads its cells.
      const row = new RegExp(`^\\|\\s*\`${name}\`\\s*\\|\\s*${type}\\s*\\|`, 'm');
      expect({ name, documented: row.test(section) }).toEqual({ name, documented: true });
    }
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => `${match[1]} ${match[2]}`);
    expect(names.sort()).toEqual(
      [
        'imagegen_device_memory_total_bytes gauge',
        'imagegen_device_memory_used_bytes gauge',
        'imagegen_generation_duration_seconds histogram',
        'imagegen_http_requests_total counter',
        'imagegen_job_queue_wait_seconds histogram',
        'imagegen_jobs_total counter',
        'imagegen_mode_switch_duration_seconds histogram',
        'imagegen_model_evictions_total counter',
        'imagegen_model_host_up gauge',
        'imagegen_model_load_failures_total counter',
        'imagegen_model_loads_total counter',
        'imagegen_model_prefetched_loads_total counter',
        'imagegen_model_resident_bytes gauge',
        'imagegen_queue_jobs gauge',
      ].sort(),
    );
  });
});
