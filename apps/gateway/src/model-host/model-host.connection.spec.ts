import { jest } from '@jest/globals';

import { FakeModelHostProcess, FakeModelHost } from '../../testing/fake-model-host.js';
import { waitFor } from '../../testing/wait-for.js';
import { loadConfig } from '../config/app-config.js';
import { ModelLoadError } from '../errors/domain.errors.js';
import { parseModesConfig } from '../modes/modes-config.loader.js';
import { RegistryService } from '../registry/registry.service.js';
import { ModelHostConnection, type ModelHostState } from './model-host.connection.js';

/** A process the gateway runs: counts its starts. */
class ManagedProcess extends FakeModelHostProcess {
  override readonly managed = true;
  starts = 0;

  override start(): void {
    super.start();
    this.starts += 1;
  }
}

function connect(
  process: FakeModelHostProcess,
  registry = new RegistryService(),
  host = new FakeModelHost(),
): { connection: ModelHostConnection; host: FakeModelHost; registry: RegistryService } {
  const config = loadConfig({ SIDECAR_STARTUP_TIMEOUT_MS: '1000', SIDECAR_RESTART_MAX_BACKOFF_MS: '4000' });
  return { connection: new ModelHostConnection(host, process, registry, config), host, registry };
}

describe('ModelHostConnection', () => {
  const connections: ModelHostConnection[] = [];

  afterEach(() => {
    for (const connection of connections.splice(0)) connection.close();
    jest.useRealTimers();
  });

  it('starts the process, waits until it serves, has the worker bring it up, then serves', async () => {
    const process = new FakeModelHostProcess();
    let ready!: () => void;
    process.ready = new Promise((resolve) => (ready = resolve));
    const { connection, registry } = connect(process);
    connections.push(connection);
    const seen: ModelHostState[] = [];
    connection.onState((state) => seen.push(state));
    let broughtUp = 0;
    connection.attach({
      settled: () => Promise.resolve(),
      bringUp: () => Promise.resolve(void (broughtUp += 1)),
      restore: () => Promise.resolve(),
    });

    const starting = connection.start();
    expect(process.started).toBe(true);
    expect(connection.state).toBe('starting');
    expect(connection.accepting).toBe(true);
    ready();
    await starting;
    expect(broughtUp).toBe(1);
    expect(registry.ready).toBe(true);
    expect(connection.state).toBe('serving');
    expect(seen).toEqual(['serving']);
  });

  it('stays starting, saying why, when the default mode cannot be brought up, and serves once a mode loads', async () => {
    const { connection, registry } = connect(new FakeModelHostProcess());
    connections.push(connection);
    const seen: ModelHostState[] = [];
    connection.onState((state) => seen.push(state));
    connection.attach({
      settled: () => Promise.resolve(),
      bringUp: () => Promise.reject(new ModelLoadError('a', 'model file not found')),
      restore: () => Promise.resolve(),
    });
    await connection.start();
    expect(connection.state).toBe('starting');
    expect(connection.startupFailure).toBe("Mode 'a' could not be loaded: model file not found");
    expect(seen).toEqual([]);

    // A job loads another mode (or the default one again, after the user fixed it): the model host serves it.
    const mode = parseModesConfig('model_root: /models\ndefault_mode: b\nmodes:\n  b:\n    model: b.safetensors\n', {
      source: 'test',
      baseDir: '/models',
      allowPickle: false,
    }).modes.get('b');
    if (!mode) throw new Error('no mode b');
    registry.recordLoad(mode, {
      key: mode.key,
      architecture: 'sd15',
      bytes: 1,
      estimatedBytes: 1,
      loadSeconds: 0,
      source: 'disk',
      evicted: [],
      evictedToRam: [],
      evictedOnOom: [],
      device: 'cpu',
      prefetched: false,
    });
    expect(connection.state).toBe('serving');
    expect(registry.ready).toBe(true);
    expect(connection.startupFailure).toBeUndefined();
    expect(seen).toEqual(['serving']);
  });

  it('goes lost on its process ending, recovering, then serving again, telling each change', async () => {
    const process = new FakeModelHostProcess();
    const { connection, host, registry } = connect(process);
    connections.push(connection);
    const seen: ModelHostState[] = [];
    connection.onState((state) => seen.push(state));
    let restored = 0;
    connection.attach({
      settled: () => Promise.resolve(),
      bringUp: () => Promise.resolve(),
      restore: () => Promise.resolve(void (restored += 1)),
    });

    registry.markStartedUp();
    expect(connection.state).toBe('serving');

    host.serving = false;
    process.lose('killed');
    expect(connection.state).toBe('lost');
    expect(connection.unavailableReason).toBe('killed');
    expect(connection.accepting).toBe(false);
    await waitFor(() => host.notServingPolls > 0, { what: 'the recovery to wait for the model host' });
    host.serving = true;
    await waitFor(() => connection.state === 'serving', { what: 'the connection to serve again' });
    expect(seen).toEqual(['lost', 'recovering', 'serving']);
    expect(restored).toBe(1);
    expect(connection.accepting).toBe(true);

    connection.close();
    expect(connection.state).toBe('stopping');
    process.lose('after close');
    expect(seen.at(-1)).toBe('stopping');
  });

  it('starts a process the gateway runs again after a loss, the pause doubling up to SIDECAR_RESTART_MAX_BACKOFF_MS', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const process = new ManagedProcess();
    const { connection, host } = connect(process);
    connections.push(connection);
    host.serving = false;
    await connection.start().catch(() => undefined);
    expect(process.starts).toBe(1);
    for (const expected of [1_000, 2_000, 4_000, 4_000]) {
      process.lose('exited with code 1');
      const before = process.starts;
      await jest.advanceTimersByTimeAsync(expected - 1);
      expect(process.starts).toBe(before);
      await jest.advanceTimersByTimeAsync(1);
      expect(process.starts).toBe(before + 1);
    }
    connection.close();
    process.lose('after close');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(process.starts).toBe(5);
  });

  it('never starts a model host it does not run (SIDECAR_ADDR) again', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const process = new FakeModelHostProcess();
    const { connection } = connect(process);
    connections.push(connection);
    process.started = false;
    process.lose('connection refused');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(process.started).toBe(false);
  });
});
