import { copyFileSync, cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { openEventStream, type EventStream, type StreamEvent } from './support/event-stream';
import { Gateway, startGateway } from './support/gateway-process';

const KEY = 'events-e2e-key';
const AUTH = { Authorization: `Bearer ${KEY}` };
const HOST = 'local/cpu';

/**
 * GET /api/events on the real stack: one gateway and its model host on three copies of the tiny SD1.5 file, with
 * MEMORY_CAP_BYTES for two and a half of them, so a third mode's load evicts one. One stream stays connected from
 * start to end; what it saw is what the other clients' views are checked against.
 */
describe('GET /api/events', () => {
  let gateway: Gateway;
  let folder: string;
  let modesFile: string;
  let all: EventStream;

  const modes = (extra: Record<string, unknown> = {}): string => {
    const mode = (file: string): Record<string, unknown> => ({
      model: `${file}.safetensors`,
      config: 'config',
      default_size: '64x64',
      default_steps: 2,
    });
    return dump({
      model_root: folder,
      default_mode: 'a',
      modes: { a: mode('a'), b: mode('b'), c: mode('c'), ...extra },
    });
  };

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-events-'));
    const demo = demoDir();
    for (const copy of ['a', 'b', 'c'])
      copyFileSync(join(demo, 'tiny-sd15.safetensors'), join(folder, `${copy}.safetensors`));
    cpSync(join(demo, 'tiny-sd15.config'), join(folder, 'config'), { recursive: true });
    modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, modes());
    const unit = statSync(join(folder, 'a.safetensors')).size;
    gateway = await startGateway({
      MODES_FILE: modesFile,
      MEMORY_CAP_BYTES: String(Math.round(unit * 2.5)),
      GATEWAY_ID: 'local',
      API_KEY: KEY,
    });
    all = await openEventStream(`${gateway.url}/api/events`, AUTH);
  }, 300_000);

  afterAll(async () => {
    all?.close();
    expect(await gateway?.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
    const response = await fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { ...AUTH, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBeLessThan(300);
    return (await response.json()) as Record<string, unknown>;
  }

  const after = (event: StreamEvent, match: (later: StreamEvent) => boolean): Promise<StreamEvent> =>
    all.next((later) => (later.id as number) > (event.id as number) && match(later));

  it('is behind the API key, and refuses type prefixes that select nothing with a 400 naming the field', async () => {
    expect((await fetch(`${gateway.url}/api/events`)).status).toBe(401);
    const bad = await fetch(`${gateway.url}/api/events?types=job.,bogus`, { headers: AUTH });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^types: /);
  });

  it("shows a job's whole life with its host, the load it made and the memory figures after it", async () => {
    const { id } = await post('/api/jobs', { prompt: 'a lighthouse', mode: 'b', num_inference_steps: 2 });
    const completed = await all.next((event) => event.type === 'job.completed' && event.data.id === id);
    const life = all.events.filter((event) => event.type.startsWith('job.') && event.data.id === id);
    expect(life.map((event) => event.type)).toEqual([
      'job.queued',
      'job.started',
      'job.switching',
      'job.progress',
      'job.progress',
      'job.completed',
    ]);
    expect(life.map((event) => event.data.host)).toEqual([null, HOST, HOST, HOST, HOST, HOST]);
    expect(life[2]?.data).toMatchObject({ from_mode: 'a', to_mode: 'b' });
    expect(life[4]?.data).toEqual({ id, host: HOST, step: 2, total_steps: 2 });
    expect(completed.data).toMatchObject({ state: 'completed', mode: 'b', switch: { to_mode: 'b', source: 'disk' } });

    const loaded = await all.next((event) => event.type === 'model.loaded' && event.data.mode === 'b');
    expect(loaded.data).toMatchObject({ host: HOST, tier: 'device', source: 'disk' });
    expect(loaded.data.bytes).toBeGreaterThan(0);
    // The figures the model host gives after the load list its key.
    const memory = await after(loaded, (event) => event.type === 'memory' && holds(event, loaded.data.key));
    expect(memory.data).toMatchObject({ host: HOST, device: 'cpu' });
    expect(memory.data.used_bytes).toBeGreaterThan(0);
  });

  it('shows the eviction a third mode makes, an unload, and the figures without them', async () => {
    const { id } = await post('/api/jobs', { prompt: 'a harbour', mode: 'c', num_inference_steps: 1 });
    await all.next((event) => event.type === 'job.completed' && event.data.id === id);
    const loaded = await all.next((event) => event.type === 'model.loaded' && event.data.mode === 'c');
    // a (the default mode, least recently used) makes room for c.
    const evicted = await all.next((event) => event.type === 'model.evicted' && event.data.mode === 'a');
    expect(evicted.data).toMatchObject({ host: HOST, reason: 'make-room' });
    expect(evicted.id).toBeLessThan(loaded.id as number);
    expect([null, 'ram']).toContain(evicted.data.tier);

    await post('/api/models/unload', { mode: 'b' });
    const unloaded = await all.next((event) => event.type === 'model.evicted' && event.data.mode === 'b');
    expect(unloaded.data).toMatchObject({ host: HOST, reason: 'unload', tier: null });
    expect(unloaded.data.bytes).toBeGreaterThan(0);
    const memory = await after(
      unloaded,
      (event) => event.type === 'memory' && holds(event, loaded.data.key) && !holds(event, unloaded.data.key),
    );
    expect(memory.data.host).toBe(HOST);
  });

  it('publishes a good edit of modes.yaml as config.reloaded and a broken one as config.rejected with its path', async () => {
    writeFileSync(modesFile, modes({ d: { model: 'a.safetensors', config: 'config' } }));
    const reloaded = await all.next((event) => event.type === 'config.reloaded');
    expect(reloaded.data).toMatchObject({ trigger: 'watcher', added: ['d'], default_mode: 'a' });
    expect(reloaded.data.modes).toEqual(['a', 'b', 'c', 'd']);

    writeFileSync(modesFile, modes({ d: { model: 'a.safetensors', config: 'config', default_steps: 'many' } }));
    const rejected = await after(reloaded, (event) => event.type === 'config.rejected');
    expect(rejected.data).toMatchObject({ trigger: 'watcher', source: modesFile });
    expect(rejected.data.problems).toEqual([expect.objectContaining({ path: 'modes.d.default_steps' })]);
  });

  it('gives a client that reconnects with Last-Event-ID every event it missed, in order, and only those', async () => {
    const first = await openEventStream(`${gateway.url}/api/events?types=job.,model.`, AUTH);
    const { id: seenJob } = await post('/api/jobs', { prompt: 'one', mode: 'c', num_inference_steps: 1 });
    const lastSeen = await first.next((event) => event.type === 'job.completed' && event.data.id === seenJob);
    first.close();
    await first.ended;
    // Missed while away: a switch to b (a load and an eviction) and a generation.
    const { id: missedJob } = await post('/api/jobs', { prompt: 'two', mode: 'b', num_inference_steps: 1 });
    const missedEnd = await all.next((event) => event.type === 'job.completed' && event.data.id === missedJob);

    const again = await openEventStream(`${gateway.url}/api/events?types=job.,model.`, {
      ...AUTH,
      'Last-Event-ID': String(lastSeen.id),
    });
    await again.next((event) => event.id === missedEnd.id);
    const expected = all.events.filter(
      (event) =>
        (event.id as number) > (lastSeen.id as number) &&
        (event.id as number) <= (missedEnd.id as number) &&
        /^(job|model)\./.test(event.type),
    );
    const replayed = again.events.filter((event) => (event.id as number) <= (missedEnd.id as number));
    again.close();
    expect(replayed.map((event) => [event.id, event.type])).toEqual(expected.map((event) => [event.id, event.type]));
    expect(replayed.map((event) => event.type)).toEqual(expect.arrayContaining(['job.queued', 'model.loaded']));
  });

  it("publishes the model host's loss and recovery as host.state", async () => {
    const pid = [...gateway.logs().matchAll(/model host started \(pid (\d+)\)/g)]
      .map((match) => Number(match[1]))
      .at(-1);
    expect(pid).toBeGreaterThan(0);
    const before = all.events.at(-1) as StreamEvent;
    process.kill(pid as number, 'SIGKILL');
    const lost = await after(before, (event) => event.type === 'host.state' && event.data.state === 'lost');
    expect(lost.data.host).toBe(HOST);
    expect(typeof lost.data.reason).toBe('string');
    const serving = await after(lost, (event) => event.type === 'host.state' && event.data.state === 'serving');
    expect(serving.data).toMatchObject({ host: HOST, reason: null });
  }, 120_000);
});

/** Whether a `memory` event's figures list `key`. */
function holds(event: StreamEvent, key: unknown): boolean {
  return (event.data.models as { key: string }[]).some((model) => model.key === key);
}
