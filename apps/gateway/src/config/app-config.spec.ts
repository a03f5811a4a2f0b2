import { ConfigError, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('applies the documented defaults, paths resolved against cwd', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config).toEqual({
      port: 4200,
      modesFile: '/srv/app/modes.yaml',
      modesWatch: true,
      queueMax: 64,
      sidecarAddr: undefined,
      sidecarPython: '/srv/app/sidecar/.venv/bin/python',
      sidecarDevice: undefined,
      sidecarStartupTimeoutMs: 300_000,
      generateTimeoutMs: 600_000,
      switchTimeoutMs: 300_000,
      queueTimeoutMs: 600_000,
      sidecarRestartMaxBackoffMs: 30_000,
      allowPickle: false,
      shutdownGraceMs: 30_000,
      legacy: { modelRoot: undefined, model: undefined, loraRoot: undefined },
    });
  });

  it('reads every variable', () => {
    const config = loadConfig(
      {
        PORT: '8080',
        MODES_FILE: 'conf/modes.yaml',
        MODES_WATCH: '0',
        QUEUE_MAX: '3',
        SIDECAR_ADDR: 'unix:/run/modelhost.sock',
        SIDECAR_PYTHON: 'python3',
        SIDECAR_DEVICE: 'cuda:1',
        SIDECAR_STARTUP_TIMEOUT_MS: '1000',
        GENERATE_TIMEOUT_MS: '2000',
        SWITCH_TIMEOUT_MS: '3000',
        QUEUE_TIMEOUT_MS: '4000',
        SIDECAR_RESTART_MAX_BACKOFF_MS: '5000',
        ALLOW_PICKLE: '1',
        SHUTDOWN_GRACE_MS: '6000',
        MODEL_ROOT: '/models',
        MODEL: 'sd15.safetensors',
        LORA_ROOT: '/loras',
      },
      '/srv/app',
    );
    expect(config).toEqual({
      port: 8080,
      modesFile: '/srv/app/conf/modes.yaml',
      modesWatch: false,
      queueMax: 3,
      sidecarAddr: 'unix:/run/modelhost.sock',
      sidecarPython: 'python3',
      sidecarDevice: 'cuda:1',
      sidecarStartupTimeoutMs: 1000,
      generateTimeoutMs: 2000,
      switchTimeoutMs: 3000,
      queueTimeoutMs: 4000,
      sidecarRestartMaxBackoffMs: 5000,
      allowPickle: true,
      shutdownGraceMs: 6000,
      legacy: { modelRoot: '/models', model: 'sd15.safetensors', loraRoot: '/loras' },
    });
  });

  it.each(['127.0.0.1:50051', 'sidecar:50051', '[::1]:50051', 'unix:/tmp/x.sock'])(
    'accepts SIDECAR_ADDR %s',
    (addr) => {
      expect(loadConfig({ SIDECAR_ADDR: addr }).sidecarAddr).toBe(addr);
    },
  );

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
    expect(loadConfig({ SIDECAR_DEVICE: device }).sidecarDevice).toBe(device);
  });

  it.each(['gpu', 'cuda:', 'cuda:x', 'CPU', 'mps', 'cpu --debug'])('refuses SIDECAR_DEVICE %j', (device) => {
    expect(() => loadConfig({ SIDECAR_DEVICE: device })).toThrow(
      `SIDECAR_DEVICE must be cpu, cuda or cuda:N (N a device number), got '${device}'`,
    );
  });

  it('rejects a port out of range', () => {
    expect(() => loadConfig({ PORT: '70000' })).toThrow("PORT must be an integer from 0 to 65535, got '70000'");
  });
});
