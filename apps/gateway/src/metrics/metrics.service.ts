import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

import type { GatewayEvent, JobBusEvent, ModelBusEvent } from '../events/event.types.js';
import type { JobKind } from '../queue/job-record.types.js';
import type { EvictionReason } from '../registry/model.events.js';
import type { ResidentEntry } from '../registry/registry.service.js';
import type { ModelHostState } from '../model-host/model-host.connection.js';
import type { LoadResult, MemoryStats } from '../model-host/model-host.types.js';
import { TalliedHistogram } from './tallied-histogram.js';

/** Every metric of ours starts with this (the default process metrics keep their standard names). */
export const METRIC_PREFIX = 'imagegen_';

/**
 * Seconds: a job's wait, a generation and a mode switch range from milliseconds (a resident mode, a tiny model)
 * to minutes (a large checkpoint read from a slow disk, a long queue).
 */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** The job states that count as queue depth: finished jobs are counted by jobs_total instead. */
const QUEUE_STATES = ['queued', 'running'] as const;

/**
 * The label values known in advance: their series start at 0, so that a dashboard's rate() and an alert on
 * "evictions by keep-alive" see a series from the first scrape rather than only after the first event.
 */
const JOB_KINDS = ['generation', 'mode-switch', 'custom'] as const satisfies readonly JobKind[];
const JOB_OUTCOMES = ['completed', 'failed', 'cancelled'] as const;
type FinishedType = `job.${(typeof JOB_OUTCOMES)[number]}`;
const LOAD_SOURCES = ['resident', 'shared-base', 'ram', 'disk'] as const satisfies readonly LoadResult['source'][];
const EVICTION_REASONS = [
  'make-room',
  'oom-retry',
  'unload',
  'keep-alive',
  'stale',
] as const satisfies readonly EvictionReason[];

/** The label of the jobs no mode belongs to (custom jobs): an empty label value is an absent label. */
const NO_MODE = '';

/** What the metrics read on each scrape, from figures the gateway already keeps (never a call to the model host). */
export interface MetricsSources {
  /** Subscribes to the bus's events whose type starts with one of `types`; returns the unsubscribe function. */
  onEvent(listener: (event: GatewayEvent) => void, types: readonly string[]): () => void;
  /** Each model host's kept figures. */
  hosts(): readonly HostFigures[];
}

/** One model host as the metrics read it: its id, its last memory figures, what it holds, its state. */
export interface HostFigures {
  readonly id: string;
  readonly lastMemory: MemoryStats | undefined;
  readonly residentModels: readonly ResidentEntry[];
  readonly state: ModelHostState;
}

export interface HttpRequestSample {
  readonly method: string;
  /** The route's pattern (`/api/jobs/:id`), never the raw URL. */
  readonly route: string;
  readonly status: number;
}

/**
 * The Prometheus metrics of README "Metrics", on a registry of its own. Job figures come from the job events and
 * the records they carry; model figures from the registry's model events; memory, resident models and the model
 * host's state are read from what the gateway keeps, when scraped.
 */
@Injectable()
export class MetricsService implements OnModuleDestroy {
  readonly registry = new Registry();
  private readonly unsubscribe: (() => void)[];
  /** Jobs not yet finished, by state: the queue depth (a finished job was running if it has a start time). */
  private readonly depth: Record<'queued' | 'running', number> = { queued: 0, running: 0 };
  /**
   * Finished jobs by kind and outcome event, counted here and handed to jobs_total when scraped: a prom-client inc
   * hashes its labels on every call (about 0.2 µs, measured), and every job ends here.
   */
  private readonly finished = Object.fromEntries(
    JOB_KINDS.map((kind) => [kind, { 'job.completed': 0, 'job.failed': 0, 'job.cancelled': 0 }]),
  ) as Record<JobKind, Record<FinishedType, number>>;

  private readonly jobs: Counter<'kind' | 'outcome'> = new Counter({
    name: `${METRIC_PREFIX}jobs_total`,
    help: 'Jobs finished, by kind (generation, mode-switch, custom) and outcome (completed, failed, cancelled).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
    collect: () => {
      this.jobs.reset();
      for (const kind of JOB_KINDS) {
        for (const outcome of JOB_OUTCOMES) this.jobs.inc({ kind, outcome }, this.finished[kind][`job.${outcome}`]);
      }
    },
  });

  private readonly queueWait = this.histogram(
    'job_queue_wait_seconds',
    "Time a job waited in the queue before it started, by the job's mode.",
    'mode',
  );

  private readonly generation = this.histogram(
    'generation_duration_seconds',
    "Time a completed generation took on the model host (its mode switch not included), by the job's mode.",
    'mode',
  );

  private readonly modeSwitch = this.histogram(
    'mode_switch_duration_seconds',
    "Time a mode switch made in a job's turn took, by where the model came from (resident, shared-base, ram, disk).",
    'source',
  );

  private readonly loads = new Counter({
    name: `${METRIC_PREFIX}model_loads_total`,
    help: 'Loads the model host made, by where the model came from (resident, shared-base, ram, disk).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  private readonly prefetchedLoads = new Counter({
    name: `${METRIC_PREFIX}model_prefetched_loads_total`,
    help: 'Loads that took a pipeline a prefetch had built in the RAM tier while earlier jobs ran (PREFETCH).',
    registers: [this.registry],
  });

  private readonly evictions = new Counter({
    name: `${METRIC_PREFIX}model_evictions_total`,
    help: 'Pipelines that left the device, by reason (make-room, oom-retry, unload, keep-alive, stale).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly loadFailures = new Counter({
    name: `${METRIC_PREFIX}model_load_failures_total`,
    help: 'Loads the model host could not make, by mode.',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });

  private readonly httpRequests = new Counter({
    name: `${METRIC_PREFIX}http_requests_total`,
    help: "HTTP requests answered, by method, route pattern ('unmatched' for no route) and status code.",
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  constructor(sources: MetricsSources, options: { readonly defaultMetrics: boolean }) {
    const queueDepth = new Gauge({
      name: `${METRIC_PREFIX}queue_jobs`,
      help: 'Jobs in the queue now, by state (queued, running).',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect: () => {
        for (const state of QUEUE_STATES) {
          queueDepth.set({ state }, this.depth[state]);
        }
      },
    });

    const memoryTotal: Gauge<'device' | 'host'> = new Gauge({
      name: `${METRIC_PREFIX}device_memory_total_bytes`,
      help: "Each model host's device memory (its cap when MEMORY_CAP_BYTES is set), as last read, by device and host.",
      labelNames: ['device', 'host'] as const,
      registers: [this.registry],
      collect: () => {
        setMemory(memoryTotal, sources.hosts(), 'totalBytes');
      },
    });
    const memoryUsed: Gauge<'device' | 'host'> = new Gauge({
      name: `${METRIC_PREFIX}device_memory_used_bytes`,
      help: 'Device memory in use on each model host, as last read, by device and host.',
      labelNames: ['device', 'host'] as const,
      registers: [this.registry],
      collect: () => {
        setMemory(memoryUsed, sources.hosts(), 'usedBytes');
      },
    });

    const residentBytes = new Gauge({
      name: `${METRIC_PREFIX}model_resident_bytes`,
      help: "Bytes of each pipeline key a model host holds, by mode, key, tier (device, or the RAM tier's ram) and host.",
      labelNames: ['mode', 'key', 'tier', 'host'] as const,
      registers: [this.registry],
      collect: () => {
        residentBytes.reset();
        for (const host of sources.hosts()) {
          for (const model of host.residentModels) {
            residentBytes.set({ mode: model.mode, key: model.key, tier: model.tier, host: host.id }, model.bytes);
          }
        }
      },
    });

    const up: Gauge<'host'> = new Gauge({
      name: `${METRIC_PREFIX}model_host_up`,
      help: '1 while a model host serves (started, a mode loaded, healthy), else 0, by host.',
      labelNames: ['host'] as const,
      registers: [this.registry],
      collect: () => {
        up.reset();
        for (const host of sources.hosts()) up.set({ host: host.id }, host.state === 'serving' ? 1 : 0);
      },
    });

    for (const source of LOAD_SOURCES) this.loads.inc({ source }, 0);
    for (const reason of EVICTION_REASONS) this.evictions.inc({ reason }, 0);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.unsubscribe = [
      sources.onEvent((event) => this.onJob(event as JobBusEvent), ['job.']),
      sources.onEvent((event) => this.onModel(event as ModelBusEvent), ['model.']),
    ];
  }

  onModuleDestroy(): void {
    for (const off of this.unsubscribe) off();
  }

  /** The exposition text of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  countHttpRequest(sample: HttpRequestSample): void {
    this.httpRequests.inc({ method: sample.method, route: sample.route, status: String(sample.status) });
  }

  private onJob(event: JobBusEvent): void {
    const { job } = event;
    const mode = job.mode ?? NO_MODE;
    switch (event.type) {
      case 'job.queued':
        this.depth.queued += 1;
        return;
      case 'job.started':
        this.depth.queued -= 1;
        this.depth.running += 1;
        if (job.queue_ms !== null) this.queueWait.observe(mode, job.queue_ms / 1000);
        return;
      case 'job.switching':
      case 'job.progress':
        return;
      case 'job.completed':
      case 'job.failed':
      case 'job.cancelled': {
        this.depth[job.started_ms === null ? 'queued' : 'running'] -= 1;
        this.finished[job.kind][event.type] += 1;
        if (job.switch !== null && job.switch_ms !== null) {
          this.modeSwitch.observe(job.switch.source, job.switch_ms / 1000);
        }
        if (event.type === 'job.completed' && job.kind === 'generation' && job.generate_ms !== null) {
          this.generation.observe(mode, job.generate_ms / 1000);
        }
      }
    }
  }

  /** One of the duration histograms, registered. */
  private histogram(name: string, help: string, label: string): TalliedHistogram {
    const histogram = new TalliedHistogram(`${METRIC_PREFIX}${name}`, help, label, DURATION_BUCKETS);
    this.registry.registerMetric(histogram.asMetric());
    return histogram;
  }

  private onModel(event: ModelBusEvent): void {
    switch (event.type) {
      case 'model.loaded':
        this.loads.inc({ source: event.source });
        if (event.prefetched) this.prefetchedLoads.inc();
        return;
      case 'model.evicted':
        // Keys that left the device: one dropped from the RAM tier left it before, and was counted then.
        if (event.reason !== 'ram-full') this.evictions.inc({ reason: event.reason });
        return;
      case 'model.load_failed':
        this.loadFailures.inc({ mode: event.mode });
    }
  }
}

/** No figures yet (or the model host is gone): no sample rather than a zero that would read as a real device. */
function setMemory(
  gauge: Gauge<'device' | 'host'>,
  hosts: readonly HostFigures[],
  field: 'totalBytes' | 'usedBytes',
): void {
  gauge.reset();
  for (const { id, lastMemory } of hosts)
    if (lastMemory) gauge.set({ device: lastMemory.device, host: id }, lastMemory[field]);
}
