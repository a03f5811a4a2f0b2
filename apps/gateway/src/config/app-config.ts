import { hostname } from 'node:os';
import { resolve } from 'node:path';

import type { ApiKeySettings } from '../auth/api-keys.js';

export const APP_CONFIG = Symbol('APP_CONFIG');

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** MODES_FILE_MAX_BYTES and MODES_FILE_MAX_NODES when unset: far above any real modes file, far below harm. */
export const DEFAULT_MODES_FILE_MAX_BYTES = 1_048_576;
export const DEFAULT_MODES_FILE_MAX_NODES = 100_000;
/**
 * SCHEDULER_MAX_DELAY_MS when unset: in bench/scheduler.mjs it keeps most of what unbounded grouping saves at
 * GPU-scale switch costs while no job is passed over for longer (docs/BENCHMARKS.md, "Scheduler").
 */
export /** Chosen by measurement: bench/batching.mjs (docs/SCHEDULING.md, "Batching"). */
const DEFAULT_MAX_BATCH = 8;
const DEFAULT_SCHEDULER_MAX_DELAY_MS = 30_000;
/**
 * EVENT_STREAMS_MAX when unset: far above a dashboard's few tabs; at the ~32 kB an open stream was measured to cost
 * (4,000 streams: RSS 161 -> 287 MB, issue 22), 1,000 streams hold about 32 MB.
 */
const DEFAULT_EVENT_STREAMS_MAX = 1_000;
/**
 * SCHEDULER_REPLICA_AFTER_MS when unset: a mode's queue that has waited this long for its busy host(s) is worth a
 * load on a free one (a load of a real checkpoint takes seconds; generations behind it would wait longer).
 */
const DEFAULT_REPLICA_AFTER_MS = 10_000;

/** Every setting the gateway reads from its environment, parsed once at start. */
export interface AppConfig {
  /** The address the HTTP server binds: loopback unless told otherwise, so nothing else on the network reaches it. */
  readonly host: string;
  /** 0 takes any free port; the start log names the one bound. */
  readonly port: number;
  /** Absolute path of the modes file. */
  readonly modesFile: string;
  readonly modesWatch: boolean;
  /** Hint each model host the modes the queue will need next, to build into its RAM tier meanwhile (PREFETCH). */
  readonly prefetch: boolean;
  /** Above 0: the watcher polls the modes file this often instead of waiting for OS events (bind mounts). */
  readonly modesWatchPollMs: number;
  /** A larger modes file is refused before it is read. */
  readonly modesFileMaxBytes: number;
  /** The most nodes the parsed modes file may hold, each use of a YAML alias counted again (billion laughs). */
  readonly modesFileMaxNodes: number;
  readonly queueMax: number;
  /**
   * The devices to start one model host each on (SIDECAR_DEVICES, or SIDECAR_DEVICE for one): `cpu`, `cuda` or
   * `cuda:N`, or `auto` (one per visible CUDA device, else one that chooses its own device). Empty when only model
   * hosts started elsewhere are used.
   */
  readonly modelHostDevices: 'auto' | readonly string[];
  /** Model hosts started elsewhere (SIDECAR_ADDRS, or SIDECAR_ADDR for one): `host:port` or `unix:/path` each. */
  readonly modelHostAddrs: readonly string[];
  readonly modelHostPython: string;
  /**
   * MODEL_HOST_TOKEN: sent as gRPC metadata (`authorization: Bearer <token>`) on every model host call; a model host
   * with the same value set refuses calls without it (sidecar/src/modelhost/auth.py). Undefined: none sent.
   */
  readonly modelHostToken: string | undefined;
  /**
   * The queue behind the job engine (QUEUE_BACKEND): `memory` (this gateway's own, the default) or `redis` (BullMQ
   * on REDIS_URL, shared by every gateway that names the same Redis and REDIS_PREFIX; docs/SCALING.md).
   */
  readonly queue:
    | { readonly backend: 'memory' }
    | {
        readonly backend: 'redis';
        readonly url: string;
        readonly prefix: string;
        /** REDIS_LOCK_MS: a claimed job's lock, renewed every half of it; a dead gateway's job runs elsewhere after it. */
        readonly lockMs: number;
        /** REDIS_MAX_STALLED: how many times one job may be taken over from a gateway that died before it fails. */
        readonly maxStalledCount: number;
      };
  /** GATEWAY_ID: this gateway's name in host ids (`<gateway id>/<device>`), unique among gateways sharing a queue. */
  readonly gatewayId: string;
  /**
   * How long the oldest job of a mode may wait while every host holding that mode is busy before a free host loads
   * it too (a replica of a hot mode); see docs/SCHEDULING.md.
   */
  readonly replicaAfterMs: number;
  readonly modelHostStartupTimeoutMs: number;
  readonly generateTimeoutMs: number;
  /** The longest one mode switch (a load on the model host) may take: past it, 504 `Mode switch timed out`. */
  readonly switchTimeoutMs: number;
  /** The longest a request may wait for its turn in the queue (the running job's time included): past it, 504. */
  readonly queueTimeoutMs: number;
  /**
   * How long the oldest waiting job may be passed over by jobs of the active mode once its FIFO turn has come;
   * 0 is strict FIFO (docs/SCHEDULING.md).
   */
  readonly schedulerMaxDelayMs: number;
  /** Most generations run as one pipeline call (docs/SCHEDULING.md, "Batching"); 1: none batched. */
  readonly maxBatch: number;
  /** The longest pause between two restarts of a model host the gateway started and lost (1 s, doubling up to it). */
  readonly modelHostRestartMaxBackoffMs: number;
  readonly allowPickle: boolean;
  /** At SIGTERM/SIGINT, how long the running job may still take before it is cancelled. */
  readonly shutdownGraceMs: number;
  /** API_KEY, ADMIN_API_KEY (comma-separated lists) and METRICS_PUBLIC. */
  readonly auth: ApiKeySettings;
  /**
   * ALLOWED_HOSTS: the Host names served besides the loopback ones (`*`: any); empty on a non-loopback HOST: any
   * (auth/host-check.ts).
   */
  readonly allowedHosts: readonly string[];
  /** CORS_ORIGINS: the origins browsers may call from; empty: CORS stays off. */
  readonly corsOrigins: readonly string[];
  /**
   * PUBLIC_URL: the server's address as clients reach it (`https://images.example.com`, a path prefix allowed), no
   * trailing slash; the base of the image URLs /v1/images/generations answers. Undefined: built from each request's
   * Host header (README "OpenAI-compatible API").
   */
  readonly publicUrl: string | undefined;
  /** LOG_LEVEL: pino's level names, or `silent`. */
  readonly logLevel: LogLevel;
  /** How long a finished job stays readable (GET /api/jobs/:id, its image). */
  readonly jobRetentionMs: number;
  /** The most finished jobs kept; the oldest go first. */
  readonly jobRetentionMax: number;
  /** The most bytes of finished jobs' images kept; past it the oldest images go (their jobs answer 410). */
  readonly jobResultsMaxBytes: number;
  /** How often an idle job event stream gets a comment line, so proxies keep it open. */
  readonly jobEventsHeartbeatMs: number;
  /** EVENTS_BUFFER: how many of the newest bus events are kept for clients that reconnect with Last-Event-ID. */
  readonly eventsBuffer: number;
  /** EVENTS_HEARTBEAT_MS: how often an idle GET /api/events stream gets a comment line. */
  readonly eventsHeartbeatMs: number;
  /**
   * EVENTS_CLIENT_MAX_BYTES: how much an event stream (either kind) may have written that its client has not read
   * before it is cut loose.
   */
  readonly eventsClientMaxBytes: number;
  /**
   * EVENT_STREAMS_MAX: the most event streams (GET /api/events and /api/jobs/:id/events together) open at once; the
   * next gets 503 with Retry-After.
   */
  readonly eventStreamsMax: number;
  /** EVENTS_STREAM_MAX_MS: above 0, a GET /api/events stream ends after this long (the client reconnects). */
  readonly eventsStreamMaxMs: number;
  /** The deprecated single-model settings, used only when the modes file is missing. */
  readonly legacy: {
    readonly modelRoot: string | undefined;
    readonly model: string | undefined;
    readonly loraRoot: string | undefined;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid environment: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the environment; throws one ConfigError naming every bad variable. */
export function loadConfig(env: Env, cwd: string = process.cwd()): AppConfig {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got '${raw}'`);
      return fallback;
    }
    return value;
  };
  const flag = (name: string, fallback: boolean): boolean => {
    const raw = text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes'].includes(raw)) return true;
    if (['0', 'false', 'no'].includes(raw)) return false;
    problems.push(`${name} must be 1 or 0, got '${env[name]}'`);
    return fallback;
  };

  const list = (name: string): string[] =>
    (text(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  const corsOrigins = list('CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`CORS_ORIGINS must list origins like https://app.example.com, got '${origin}'`);
    }
  }

  const allowedHosts = list('ALLOWED_HOSTS');
  for (const name of allowedHosts) {
    if (name !== '*' && !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$/.test(name)) {
      problems.push(`ALLOWED_HOSTS must list host names or addresses without a port (or *), got '${name}'`);
    }
  }

  const publicUrl = text('PUBLIC_URL');
  if (publicUrl !== undefined && !isPublicUrl(publicUrl)) {
    problems.push(`PUBLIC_URL must be an http(s) URL without query, fragment or credentials, got '${publicUrl}'`);
  }

  const logLevel = (text('LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  }

  const addrs = text('SIDECAR_ADDRS') !== undefined ? list('SIDECAR_ADDRS') : [text('SIDECAR_ADDR') ?? []].flat();
  const addrName = text('SIDECAR_ADDRS') !== undefined ? 'SIDECAR_ADDRS' : 'SIDECAR_ADDR';
  for (const addr of addrs) {
    if (!/^unix:.+$|^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(addr)) {
      problems.push(`${addrName} must be host:port or unix:/path, got '${addr}'`);
    }
  }
  const python = text('SIDECAR_PYTHON') ?? 'sidecar/.venv/bin/python';
  const modelHostToken = text('MODEL_HOST_TOKEN');
  // gRPC metadata values are printable ASCII; a short token is a guessable one.
  if (modelHostToken !== undefined && !/^[\x21-\x7e]{16,4096}$/.test(modelHostToken)) {
    problems.push(
      'MODEL_HOST_TOKEN must be 16 or more printable ASCII characters without spaces (openssl rand -hex 32)',
    );
  }
  const devicesName = text('SIDECAR_DEVICES') !== undefined ? 'SIDECAR_DEVICES' : 'SIDECAR_DEVICE';
  const deviceList =
    text('SIDECAR_DEVICES') !== undefined ? list('SIDECAR_DEVICES') : [text('SIDECAR_DEVICE') ?? []].flat();
  for (const device of deviceList) {
    if (!/^(cpu|cuda|cuda:\d{1,3})$/.test(device) && !(device === 'auto' && deviceList.length === 1)) {
      problems.push(
        `${devicesName} must be cpu, cuda or cuda:N (N a device number)` +
          (devicesName === 'SIDECAR_DEVICES' ? `, comma-separated, or auto` : '') +
          `, got '${device}'`,
      );
    }
  }
  // SIDECAR_DEVICE is the device of the one host the gateway starts when no host started elsewhere is named (as
  // before several hosts); unset with none named: one host per visible GPU.
  const modelHostDevices: AppConfig['modelHostDevices'] =
    text('SIDECAR_DEVICES') !== undefined
      ? deviceList[0] === 'auto'
        ? 'auto'
        : deviceList
      : addrs.length > 0
        ? []
        : deviceList.length > 0
          ? deviceList
          : 'auto';
  const gatewayId = text('GATEWAY_ID') ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(gatewayId)) {
    problems.push(`GATEWAY_ID must be letters, digits, '.', '_' or '-' (at most 63), got '${gatewayId}'`);
  }

  const queueBackend = (text('QUEUE_BACKEND') ?? 'memory').toLowerCase();
  let queue: AppConfig['queue'] = { backend: 'memory' };
  if (queueBackend === 'redis') {
    const url = text('REDIS_URL');
    const prefix = text('REDIS_PREFIX') ?? 'imagegen';
    if (url === undefined) problems.push('REDIS_URL is required with QUEUE_BACKEND=redis (redis://host:6379)');
    else if (!URL.canParse(url) || !/^rediss?:$/.test(new URL(url).protocol)) {
      problems.push(`REDIS_URL must be a redis:// or rediss:// URL, got '${url}'`);
    }
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(prefix)) {
      problems.push(`REDIS_PREFIX must be 1 to 64 letters, digits, '.', '_' or '-', got '${prefix}'`);
    }
    queue = {
      backend: 'redis',
      url: url ?? '',
      prefix,
      lockMs: integer('REDIS_LOCK_MS', 30_000, 200, 3_600_000),
      maxStalledCount: integer('REDIS_MAX_STALLED', 2, 0, 100),
    };
  } else if (queueBackend !== 'memory') {
    problems.push(`QUEUE_BACKEND must be memory or redis, got '${queueBackend}'`);
  } else if (text('REDIS_URL') !== undefined) {
    problems.push('REDIS_URL is set but QUEUE_BACKEND is not redis: set QUEUE_BACKEND=redis to use it, or unset it');
  }

  const host = text('HOST') ?? '127.0.0.1';
  if (!/^(\[?[0-9a-fA-F:.]+\]?|[A-Za-z0-9.-]+)$/.test(host)) {
    problems.push(`HOST must be an IP address or a host name, got '${host}'`);
  }

  const config: AppConfig = {
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port: integer('PORT', 4200, 0, 65535),
    modesFile: resolve(cwd, text('MODES_FILE') ?? 'modes.yaml'),
    modesWatch: flag('MODES_WATCH', true),
    prefetch: flag('PREFETCH', true),
    modesWatchPollMs: integer('MODES_WATCH_POLL_MS', 0, 0, 3_600_000),
    modesFileMaxBytes: integer('MODES_FILE_MAX_BYTES', DEFAULT_MODES_FILE_MAX_BYTES, 1, 1_073_741_824),
    modesFileMaxNodes: integer('MODES_FILE_MAX_NODES', DEFAULT_MODES_FILE_MAX_NODES, 1, 100_000_000),
    queueMax: integer('QUEUE_MAX', 64, 1, 1_000_000),
    modelHostDevices,
    modelHostAddrs: addrs,
    // A bare command name is looked up on PATH; anything with a slash is a path from cwd.
    modelHostPython: python.includes('/') ? resolve(cwd, python) : python,
    modelHostToken,
    gatewayId,
    queue,
    replicaAfterMs: integer('SCHEDULER_REPLICA_AFTER_MS', DEFAULT_REPLICA_AFTER_MS, 0, 86_400_000),
    modelHostStartupTimeoutMs: integer('SIDECAR_STARTUP_TIMEOUT_MS', 300_000, 1, 86_400_000),
    generateTimeoutMs: integer('GENERATE_TIMEOUT_MS', 600_000, 1, 86_400_000),
    switchTimeoutMs: integer('SWITCH_TIMEOUT_MS', 300_000, 1, 86_400_000),
    queueTimeoutMs: integer('QUEUE_TIMEOUT_MS', 600_000, 1, 86_400_000),
    schedulerMaxDelayMs: integer('SCHEDULER_MAX_DELAY_MS', DEFAULT_SCHEDULER_MAX_DELAY_MS, 0, 86_400_000),
    maxBatch: integer('MAX_BATCH', DEFAULT_MAX_BATCH, 1, 64),
    modelHostRestartMaxBackoffMs: integer('SIDECAR_RESTART_MAX_BACKOFF_MS', 30_000, 1, 3_600_000),
    allowPickle: flag('ALLOW_PICKLE', false),
    shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 30_000, 0, 3_600_000),
    auth: {
      apiKeys: list('API_KEY'),
      adminApiKeys: list('ADMIN_API_KEY'),
      metricsPublic: flag('METRICS_PUBLIC', false),
    },
    allowedHosts,
    corsOrigins,
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    logLevel: (LOG_LEVELS as readonly string[]).includes(logLevel) ? (logLevel as LogLevel) : 'info',
    jobRetentionMs: integer('JOB_RETENTION_MS', 3_600_000, 0, 604_800_000),
    jobRetentionMax: integer('JOB_RETENTION_MAX', 1_000, 0, 1_000_000),
    jobResultsMaxBytes: integer('JOB_RESULTS_MAX_BYTES', 256 * 2 ** 20, 0, 2 ** 40),
    jobEventsHeartbeatMs: integer('JOB_EVENTS_HEARTBEAT_MS', 15_000, 10, 3_600_000),
    eventsBuffer: integer('EVENTS_BUFFER', 4_096, 1, 1_000_000),
    eventsHeartbeatMs: integer('EVENTS_HEARTBEAT_MS', 15_000, 10, 3_600_000),
    eventsClientMaxBytes: integer('EVENTS_CLIENT_MAX_BYTES', 2 ** 20, 1_024, 2 ** 30),
    eventsStreamMaxMs: integer('EVENTS_STREAM_MAX_MS', 0, 0, 86_400_000),
    eventStreamsMax: integer('EVENT_STREAMS_MAX', DEFAULT_EVENT_STREAMS_MAX, 1, 1_000_000),
    legacy: { modelRoot: text('MODEL_ROOT'), model: text('MODEL'), loraRoot: text('LORA_ROOT') },
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

function isPublicUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (
    ['http:', 'https:'].includes(url.protocol) &&
    url.search === '' &&
    url.hash === '' &&
    url.username === '' &&
    url.password === '' &&
    !/[?#]/.test(value)
  );
}
