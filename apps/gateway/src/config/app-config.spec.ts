import { hostname } from 'node:os';

import { ConfigError, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('applies the documented defaults, paths resolved against cwd', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 4200,
      modesFile: '/srv/app/modes.yaml',
      modesWatch: true,
      prefetch: true,
      modesFileMaxBytes: 1_048_576,
      modesFileMaxNodes: 100_000,
      queueMax: 64,
      modelHostDevices: 'auto',
      modelHostAddrs: [],
      modelHostPython: '/srv/app/sidecar/.venv/bin/python',
      gatewayId: hostname(),
      queue: { backend: 'memory' },
      replicaAfterMs: 10_000,
      modelHostStartupTimeoutMs: 300_000,
      generateTimeoutMs: 600_000,
      switchTimeoutMs: 300_000,
      queueTimeoutMs: 600_000,
      schedulerMaxDelayMs: 30_000,
      maxBatch: 8,
      modelHostRestartMaxBackoffMs: 30_000,
      allowPickle: false,
      shutdownGraceMs: 30_000,
      modesWatchPollMs: 0,
      auth: { apiKeys: [], adminApiKeys: [], metricsPublic: false },
      allowedHosts: [],
      modelHostToken: undefined,
      corsOrigins: [],
      logLevel: 'info',
      jobRetentionMs: 3_600_000,
      jobRetentionMax: 1_000,
      jobResultsMaxBytes: 256 * 2 ** 20,
      jobEventsHeartbeatMs: 15_000,
      eventsBuffer: 4_096,
      eventsHeartbeatMs: 15_000,
      eventsClientMaxBytes: 2 ** 20,
      eventsStreamMaxMs: 0,
      eventStreamsMax: 1000,
      legacy: { modelRoot: undefined, model: undefined, loraRoot: undefined },
    });
  });

  it('reads every variable', () => {
    const config = loadConfig(
      {
        HOST: '0.0.0.0',
        PORT: '8080',
        MODES_FILE: 'conf/modes.yaml',
        MODES_WATCH: '0',
        PREFETCH: '0',
        MODES_FILE_MAX_BYTES: '2048',
        MODES_FILE_MAX_NODES: '500',
        QUEUE_MAX: '3',
        SIDECAR_ADDR: 'unix:/run/modelhost.sock',
        SIDECAR_PYTHON: 'python3',
        SIDECAR_DEVICE: 'cuda:1',
        GATEWAY_ID: 'gw-1',
        QUEUE_BACKEND: 'redis',
        REDIS_URL: 'redis://queue.internal:6380/2',
        REDIS_PREFIX: 'farm-1',
        REDIS_LOCK_MS: '20000',
        REDIS_MAX_STALLED: '3',
        SCHEDULER_REPLICA_AFTER_MS: '2500',
        SIDECAR_STARTUP_TIMEOUT_MS: '1000',
        GENERATE_TIMEOUT_MS: '2000',
        SWITCH_TIMEOUT_MS: '3000',
        QUEUE_TIMEOUT_MS: '4000',
        SCHEDULER_MAX_DELAY_MS: '0',
        MAX_BATCH: '1',
        SIDECAR_RESTART_MAX_BACKOFF_MS: '5000',
        ALLOW_PICKLE: '1',
        SHUTDOWN_GRACE_MS: '6000',
        MODES_WATCH_POLL_MS: '2000',
        API_KEY: ' k1 , k2,, ',
        ADMIN_API_KEY: 'adm',
        METRICS_PUBLIC: '1',
        CORS_ORIGINS: 'https://app.example.com,http://localhost:3000',
        ALLOWED_HOSTS: 'images.lan, [fd00::1] ,10.0.0.7',
        MODEL_HOST_TOKEN: 'abcdef0123456789abcdef',
        LOG_LEVEL: 'DEBUG',
        JOB_RETENTION_MS: '1000',
        JOB_RETENTION_MAX: '5',
        JOB_RESULTS_MAX_BYTES: '1024',
        JOB_EVENTS_HEARTBEAT_MS: '50',
        EVENTS_BUFFER: '100',
        EVENTS_HEARTBEAT_MS: '60',
        EVENTS_CLIENT_MAX_BYTES: '4096',
        EVENTS_STREAM_MAX_MS: '70',
        EVENT_STREAMS_MAX: '12',
        MODEL_ROOT: '/models',
        MODEL: 'sd15.safetensors',
        LORA_ROOT: '/loras',
      },
      '/srv/app',
    );
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 8080,
      modesFile: '/srv/app/conf/modes.yaml',
      modesWatch: false,
      prefetch: false,
      modesFileMaxBytes: 2048,
      modesFileMaxNodes: 500,
      queueMax: 3,
      modelHostDevices: [],
      modelHostAddrs: ['unix:/run/modelhost.sock'],
      modelHostPython: 'python3',
      gatewayId: 'gw-1',
      queue: {
        backend: 'redis',
        url: 'redis://queue.internal:6380/2',
        prefix: 'farm-1',
        lockMs: 20_000,
        maxStalledCount: 3,
      },
      replicaAfterMs: 2500,
      modelHostStartupTimeoutMs: 1000,
      generateTimeoutMs: 2000,
      switchTimeoutMs: 3000,
      queueTimeoutMs: 4000,
      schedulerMaxDelayMs: 0,
      maxBatch: 1,
      modelHostRestartMaxBackoffMs: 5000,
      allowPickle: true,
      shutdownGraceMs: 6000,
      modesWatchPollMs: 2000,
      auth: { apiKeys: ['k1', 'k2'], adminApiKeys: ['adm'], metricsPublic: true },
      allowedHosts: ['images.lan', '[fd00::1]', '10.0.0.7'],
      modelHostToken: 'abcdef0123456789abcdef',
      corsOrigins: ['https://app.example.com', 'http://localhost:3000'],
      logLevel: 'debug',
      jobRetentionMs: 1000,
      jobRetentionMax: 5,
      jobResultsMaxBytes: 1024,
      jobEventsHeartbeatMs: 50,
      eventsBuffer: 100,
      eventsHeartbeatMs: 60,
      eventsClientMaxBytes: 4096,
      eventsStreamMaxMs: 70,
      eventStreamsMax: 12,
      legacy: { modelRoot: '/models', model: 'sd15.safetensors', loraRoot: '/loras' },
    });
  });

  it.each(['127.0.0.1:50051', 'sidecar:50051', '[::1]:50051', 'unix:/tmp/x.sock'])(
    'accepts SIDECAR_ADDR %s',
    (addr) => {
      expect(loadConfig({ SIDECAR_ADDR: addr }).modelHostAddrs).toEqual([addr]);
    },
  );

  it('starts no model host of its own when only SIDECAR_ADDR(S) is set, else one per visible GPU', () => {
    expect(loadConfig({ SIDECAR_ADDR: 'unix:/a.sock' }).modelHostDevices).toEqual([]);
    // SIDECAR_DEVICE is for the host the gateway starts: none is started when one elsewhere is named.
    expect(loadConfig({ SIDECAR_ADDR: 'unix:/a.sock', SIDECAR_DEVICE: 'cpu' }).modelHostDevices).toEqual([]);
    expect(loadConfig({ SIDECAR_DEVICE: 'cpu' }).modelHostDevices).toEqual(['cpu']);
    expect(loadConfig({ SIDECAR_ADDRS: 'h1:1, h2:2' }).modelHostAddrs).toEqual(['h1:1', 'h2:2']);
    expect(loadConfig({}).modelHostDevices).toBe('auto');
    expect(loadConfig({ SIDECAR_DEVICES: 'auto' }).modelHostDevices).toBe('auto');
    expect(loadConfig({ SIDECAR_DEVICES: 'cpu, cpu' }).modelHostDevices).toEqual(['cpu', 'cpu']);
    expect(loadConfig({ SIDECAR_DEVICES: 'cuda:0,cuda:1', SIDECAR_DEVICE: 'cpu' }).modelHostDevices).toEqual([
      'cuda:0',
      'cuda:1',
    ]);
  });

  it.each(['cpu,gpu', 'auto,cpu', 'cuda:0,,x'])('refuses SIDECAR_DEVICES %j', (devices) => {
    expect(() => loadConfig({ SIDECAR_DEVICES: devices })).toThrow(/SIDECAR_DEVICES must be cpu, cuda or cuda:N/);
  });

  it.each([
    [{ QUEUE_BACKEND: 'kafka' }, "QUEUE_BACKEND must be memory or redis, got 'kafka'"],
    [{ QUEUE_BACKEND: 'redis' }, 'REDIS_URL is required with QUEUE_BACKEND=redis (redis://host:6379)'],
    [
      { QUEUE_BACKEND: 'redis', REDIS_URL: 'http://x:6379' },
      "REDIS_URL must be a redis:// or rediss:// URL, got 'http://x:6379'",
    ],
    [{ QUEUE_BACKEND: 'redis', REDIS_URL: 'redis://x', REDIS_PREFIX: 'a:b' }, 'REDIS_PREFIX must be 1 to 64 letters'],
    [{ REDIS_URL: 'redis://x' }, 'REDIS_URL is set but QUEUE_BACKEND is not redis'],
  ])('refuses the queue settings %j', (env, problem) => {
    expect(() => loadConfig(env)).toThrow(problem);
  });

  it.each(['a b', '-x', 'x/y', ''.padEnd(64, 'a')])('refuses GATEWAY_ID %j', (id) => {
    expect(() => loadConfig({ GATEWAY_ID: id })).toThrow(/GATEWAY_ID must be letters, digits/);
  });

  it('names every invalid variable in one error', () => {
    const env = {
      PORT: 'abc',
      QUEUE_MAX: '0',
      GENERATE_TIMEOUT_MS: '1.5',
      MODES_WATCH: 'maybe',
      SIDECAR_ADDR: 'nowhere',
    };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(
      "Invalid environment: SIDECAR_ADDR must be host:port or unix:/path, got 'nowhere'; " +
        "PORT must be an integer from 0 to 65535, got 'abc'; " +
        "MODES_WATCH must be 1 or 0, got 'maybe'; " +
        "QUEUE_MAX must be an integer from 1 to 1000000, got '0'; " +
        "GENERATE_TIMEOUT_MS must be an integer from 1 to 86400000, got '1.5'",
    );
  });

  it.each(['cpu', 'cuda', 'cuda:0', 'cuda:12'])('accepts SIDECAR_DEVICE %s', (device) => {
    expect(loadConfig({ SIDECAR_DEVICE: device }).modelHostDevices).toEqual([device]);
  });

  it.each(['gpu', 'cuda:', 'cuda:x', 'CPU', 'mps', 'cpu --debug'])('refuses SIDECAR_DEVICE %j', (device) => {
    expect(() => loadConfig({ SIDECAR_DEVICE: device })).toThrow(
      `SIDECAR_DEVICE must be cpu, cuda or cuda:N (N a device number), got '${device}'`,
    );
  });

  it.each(['0', '1.5', 'four', '65'])('refuses MAX_BATCH %s', (value) => {
    expect(() => loadConfig({ MAX_BATCH: value })).toThrow(
      `Invalid environment: MAX_BATCH must be an integer from 1 to 64, got '${value}'`,
    );
  });

  it.each(['-1', '1.5', '30s', '86400001'])('refuses SCHEDULER_MAX_DELAY_MS %s', (value) => {
    expect(() => loadConfig({ SCHEDULER_MAX_DELAY_MS: value })).toThrow(
      `Invalid environment: SCHEDULER_MAX_DELAY_MS must be an integer from 0 to 86400000, got '${value}'`,
    );
  });

  it('rejects a port out of range', () => {
    expect(() => loadConfig({ PORT: '70000' })).toThrow("PORT must be an integer from 0 to 65535, got '70000'");
  });

  it.each([
    ['::', '::'],
    ['[::1]', '::1'],
    ['localhost', 'localhost'],
    ['192.168.1.10', '192.168.1.10'],
  ])('binds HOST %s as %s', (host, bound) => {
    expect(loadConfig({ HOST: host }).host).toBe(bound);
  });

  it('refuses a HOST that is not an address, and modes file bounds below 1', () => {
    expect(() =>
      loadConfig({ HOST: 'http://0.0.0.0', MODES_FILE_MAX_BYTES: '0', MODES_FILE_MAX_NODES: 'many' }),
    ).toThrow(
      "Invalid environment: HOST must be an IP address or a host name, got 'http://0.0.0.0'; " +
        "MODES_FILE_MAX_BYTES must be an integer from 1 to 1073741824, got '0'; " +
        "MODES_FILE_MAX_NODES must be an integer from 1 to 100000000, got 'many'",
    );
  });
});

describe('loadConfig: MODEL_HOST_TOKEN', () => {
  it('refuses a short token and one with spaces or non-ASCII characters', () => {
    for (const bad of ['short', 'sixteen chars ok', 'é'.repeat(16)])
      expect(() => loadConfig({ MODEL_HOST_TOKEN: bad })).toThrow('MODEL_HOST_TOKEN must be 16 or more printable');
  });
});

describe('loadConfig: ALLOWED_HOSTS', () => {
  it('takes names, addresses and *, and refuses a port, a scheme or a path', () => {
    expect(loadConfig({ ALLOWED_HOSTS: '*' }).allowedHosts).toEqual(['*']);
    for (const bad of ['images.lan:80', 'http://images.lan', 'images.lan/x', 'a b'])
      expect(() => loadConfig({ ALLOWED_HOSTS: bad })).toThrow(
        `ALLOWED_HOSTS must list host names or addresses without a port (or *), got '${bad}'`,
      );
  });
});

describe('loadConfig: CORS_ORIGINS', () => {
  it('refuses an entry that is not an origin', () => {
    expect(() => loadConfig({ CORS_ORIGINS: 'https://ok.example, *' })).toThrow(
      "CORS_ORIGINS must list origins like https://app.example.com, got '*'",
    );
    expect(() => loadConfig({ CORS_ORIGINS: 'https://ok.example/path' })).toThrow(ConfigError);
  });
});

describe('loadConfig: PUBLIC_URL', () => {
  it('takes an http(s) URL, with a path prefix, without its trailing slash', () => {
    expect(loadConfig({}).publicUrl).toBeUndefined();
    expect(loadConfig({ PUBLIC_URL: 'https://images.example.com/' }).publicUrl).toBe('https://images.example.com');
    expect(loadConfig({ PUBLIC_URL: 'http://10.0.0.5:8080/gen//' }).publicUrl).toBe('http://10.0.0.5:8080/gen');
  });

  it.each([
    'images.example.com',
    'ftp://images.example.com',
    'https://x.example/?a=1',
    'https://x.example/#top',
    'https://u:p@x.example',
  ])('refuses %s', (value) => {
    expect(() => loadConfig({ PUBLIC_URL: value })).toThrow(
      `PUBLIC_URL must be an http(s) URL without query, fragment or credentials, got '${value}'`,
    );
  });
});

describe('loadConfig: LOG_LEVEL', () => {
  it('refuses a level pino does not know', () => {
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(
      "LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'",
    );
  });
});
