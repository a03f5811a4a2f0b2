import type { FakeModelHost } from '../../testing/fake-model-host.js';
import { JobEngineFixture, PARAMS } from '../../testing/job-engine.fixture.js';
import { waitFor } from '../../testing/wait-for.js';
import type { HostSession } from '../model-host/host-session.js';
import { CustomJob, GenerationJob, ModeSwitchJob, type JobContext } from './job.types.js';
import type { WorkerPool } from './worker-pool.service.js';

/** The engine over two fake model hosts (SIDECAR_DEVICES=cpu,cpu): per-host state, dispatch, loss, retries. */
describe('WorkerPool with several model hosts', () => {
  let f: JobEngineFixture;
  let pool: WorkerPool;
  let first: FakeModelHost;
  let second: FakeModelHost;
  let hosts: readonly HostSession[];

  function start(env: Record<string, string> = {}): void {
    pool = f.pool(64, { SIDECAR_DEVICES: 'cpu,cpu', ...env });
    hosts = f.hosts.sessions;
    const [a, b] = f.factory.hosts;
    if (!a || !b) throw new Error('two hosts expected');
    first = a.client;
    second = b.client;
  }

  const generate = (mode: string, prompt: string): Promise<unknown> =>
    pool.submitJob(new GenerationJob(mode, { ...PARAMS, prompt })).result();

  beforeEach(() => {
    f = new JobEngineFixture();
  });

  afterEach(() => f.close());

  it('names each host by the gateway id and its device, and keeps one registry per host', () => {
    start();
    expect(hosts.map((host) => host.id)).toEqual(['test/cpu#0', 'test/cpu#1']);
    expect(hosts[0]?.registry).not.toBe(hosts[1]?.registry);
  });

  it('never lets a load on one host make another host skip its own', async () => {
    start({ SCHEDULER_REPLICA_AFTER_MS: '0' });
    await generate('a', 'on the first');
    first.hold = new Promise(() => undefined);
    const held = pool.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'held' }));
    await waitFor(() => first.signals.length === 1, { what: 'the first host to run the held job' });
    // Mode a is active on the first host; the second has never loaded it and must, for its own job.
    await generate('a', 'on the second');
    expect(second.calls).toEqual(['load a', 'generate a on the second']);
    expect(first.calls.filter((call) => call.startsWith('load'))).toEqual(['load a']);
    held.cancel();
  });

  it('keeps each mode on the host that holds it: alternating jobs switch twice in all, not per job', async () => {
    start();
    const jobs = Array.from({ length: 10 }, (_, i) =>
      pool.submitJob(new GenerationJob(i % 2 === 0 ? 'a' : 'b', { ...PARAMS, prompt: `p${i}` })),
    );
    await Promise.all(jobs.map((job) => job.result()));
    const hostsByMode = new Map<string, Set<string | null>>();
    for (const job of jobs) {
      const record = pool.store.get(job.id);
      if (!record?.mode) throw new Error('no record');
      hostsByMode.set(record.mode, (hostsByMode.get(record.mode) ?? new Set()).add(record.host));
    }
    expect([...(hostsByMode.get('a') ?? [])]).toEqual(['test/cpu#0']);
    expect([...(hostsByMode.get('b') ?? [])]).toEqual(['test/cpu#1']);
    expect([...first.calls, ...second.calls].filter((call) => call.startsWith('load'))).toEqual(['load a', 'load b']);
  });

  it('leaves a busy host its mode until the oldest job of it has waited SCHEDULER_REPLICA_AFTER_MS, then loads a replica', async () => {
    start({ SCHEDULER_REPLICA_AFTER_MS: '200' });
    await Promise.all([generate('a', 'warm a'), generate('b', 'warm b')]);
    expect(second.calls).toContain('load b');
    first.hold = new Promise(() => undefined);
    const held = pool.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'held' }));
    await waitFor(() => first.signals.length === 1, { what: 'the first host to run the held job' });
    const submitted = Date.now();
    const waiting = pool.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'waits' }));
    await waitFor(() => second.calls.includes('load a'), { what: 'the second host to load a replica of a' });
    expect(Date.now() - submitted).toBeGreaterThanOrEqual(200);
    await waiting.result();
    expect(second.calls.slice(-2)).toEqual(['load a', 'generate a waits']);
    held.cancel();
  });

  it('runs a generation whose host died once more on the other host, with its seed, and clears only that host', async () => {
    start();
    await Promise.all([generate('a', 'warm a'), generate('b', 'warm b')]);
    first.hold = new Promise(() => undefined);
    const job = pool.submitJob(new GenerationJob('a', { ...PARAMS, prompt: 'survives', seed: 99 }));
    await waitFor(() => first.signals.length === 1, { what: 'the first host to start the job' });

    first.serving = false;
    first.resident.clear();
    f.factory.hosts[0]?.process.lose();
    first.dropConnections();

    await expect(job.result()).resolves.toMatchObject({ png: Buffer.from('png:survives'), seed: 99 });
    expect(pool.store.get(job.id)).toMatchObject({ state: 'completed', host: 'test/cpu#1' });
    expect(hosts[0]?.registry.currentMode).toBeUndefined();
    expect(hosts[1]?.registry.currentMode).toBe('a');
    expect(hosts[1]?.registry.residentModels().map((entry) => entry.mode)).toEqual(['b', 'a']);
    // The other host kept serving all along; new work is taken.
    expect(pool.unavailableReason).toBeUndefined();
    await generate('b', 'after');
    first.serving = true;
  });

  it('runs a custom job bound to a host on that host, and tells its handler which', async () => {
    start();
    const ran: string[] = [];
    function where(this: JobContext): string {
      ran.push(this.host.id);
      return this.host.id;
    }
    await expect(
      pool.submitJob(new CustomJob({ handler: where, args: [], host: 'test/cpu#1' })).result(),
    ).resolves.toBe('test/cpu#1');
    await expect(pool.submitJob(new ModeSwitchJob('a')).result()).resolves.toMatchObject({ mode: 'a' });
    expect(() => pool.submitJob(new CustomJob({ handler: where, args: [], host: 'test/gone' }))).toThrow(
      "no model host 'test/gone' (hosts: test/cpu#0, test/cpu#1)",
    );
    expect(ran).toEqual(['test/cpu#1']);
  });
});
