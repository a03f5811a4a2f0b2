import type { Server } from 'node:http';
import request from 'supertest';

import { writeFileSync } from 'node:fs';

import { openSse, type SseClient } from '../../testing/sse-client.js';
import { createTestApp, TEST_MODES_YAML, type TestApp } from '../../testing/test-app.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { HostsService } from '../model-host/hosts.service.js';
import { waitFor } from '../../testing/wait-for.js';
import { EventStreams } from './event-streams.service.js';

describe('GET /api/events', () => {
  let t: TestApp;
  let server: Server;
  const clients: SseClient[] = [];

  async function start(env: Record<string, string> = {}): Promise<void> {
    t = await createTestApp({ EVENTS_HEARTBEAT_MS: '20', SIDECAR_DEVICE: 'cpu', ...env });
    server = t.app.getHttpServer() as Server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }

  async function open(path = '/api/events', headers: Record<string, string> = {}): Promise<SseClient> {
    const client = await openSse(server, path, headers);
    clients.push(client);
    return client;
  }

  async function job(mode = 'plain', steps = 2): Promise<string> {
    const posted = await request(server).post('/api/jobs').send({ prompt: 'a', mode, num_inference_steps: steps });
    return (posted.body as { id: string }).id;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await t.close();
  });

  it("carries a job's whole life with its host, the model events and ids that grow by one", async () => {
    await start();
    const stream = await open();
    expect(stream.status).toBe(200);
    const id = await job('plain', 2);
    await stream.next((event) => event.type === 'job.completed' && event.data.id === id);
    const ofJob = stream.events.filter((event) => event.type.startsWith('job.') && event.data.id === id);
    expect(ofJob.map((event) => event.type)).toEqual([
      'job.queued',
      'job.started',
      'job.switching',
      'job.progress',
      'job.progress',
      'job.completed',
    ]);
    expect(ofJob.map((event) => event.data.host)).toEqual([null, ...Array<string>(5).fill('test/cpu')]);
    expect(ofJob[2]?.data).toMatchObject({ id, state: 'running', from_mode: 'sdxl-general', to_mode: 'plain' });
    expect(ofJob[3]?.data).toEqual({ id, host: 'test/cpu', step: 1, total_steps: 2 });
    expect(ofJob[5]?.data).toMatchObject({ id, state: 'completed', host: 'test/cpu', position: null });
    const loaded = stream.events.find((event) => event.type === 'model.loaded');
    expect(loaded?.data).toMatchObject({ host: 'test/cpu', mode: 'plain', tier: 'device', source: 'disk' });
    const ids = stream.events.map((event) => event.id as number);
    expect(ids.every((eventId, i) => i === 0 || eventId === ids[i - 1] + 1)).toBe(true);
  });

  it('replays what a client missed after its Last-Event-ID, and nothing twice', async () => {
    await start();
    const first = await open();
    const before = await job();
    const seen = await first.next((event) => event.type === 'job.completed' && event.data.id === before);
    first.close();
    const missed = await job();
    const again = await open('/api/events', { 'Last-Event-ID': String(seen.id) });
    await again.next((event) => event.type === 'job.completed' && event.data.id === missed);
    expect(again.events[0]?.id).toBe((seen.id as number) + 1);
    expect(again.events.filter((event) => event.data.id === missed).map((event) => event.type)).toContain('job.queued');
    expect(again.events.some((event) => event.data.id === before)).toBe(false);
  });

  it('gives a new client the id to resume from before any event, so a reconnect misses nothing', async () => {
    await start();
    const first = await open();
    await waitFor(() => first.lastEventId !== undefined, { what: 'the id-only frame' });
    expect(first.events).toHaveLength(0);
    const since = first.lastEventId as number;
    first.close();
    const id = await job('plain', 1);
    const again = await open('/api/events?types=job.', { 'Last-Event-ID': String(since) });
    const queued = await again.next((event) => event.type === 'job.queued');
    expect(queued.data.id).toBe(id);
    expect(queued.id).toBeGreaterThan(since);
    expect(again.events.some((event) => event.type === 'reset')).toBe(false);
  });

  it('sends one reset to a Last-Event-ID older than the buffer, with the id to resume from', async () => {
    await start({ EVENTS_BUFFER: '3' });
    const watcher = await open();
    const id = await job('plain', 3);
    const done = await watcher.next((event) => event.type === 'job.completed' && event.data.id === id);
    const stale = await open('/api/events', { 'Last-Event-ID': '1' });
    const reset = await stale.next((event) => event.type === 'reset');
    expect(reset.id).toBe(done.id);
    expect(reset.data).toMatchObject({ last_event_id: 1, oldest_id: (done.id as number) - 2 });
    expect(stale.events).toHaveLength(1);
  });

  it('filters by type prefixes, and answers 400 naming the field for garbage', async () => {
    await start();
    const models = await open('/api/events?types=model.,config.');
    const id = await job();
    await request(server).post('/api/modes/reload').expect(200);
    await models.next((event) => event.type === 'config.reloaded');
    const types = models.events.map((event) => event.type);
    expect(types).toContain('model.loaded');
    expect(types.every((type) => type.startsWith('model.') || type.startsWith('config.'))).toBe(true);
    expect(models.events.some((event) => event.data.id === id)).toBe(false);

    const bad = await request(server).get('/api/events?types=job.,nonsense').expect(400);
    expect((bad.body as { message: string }).message).toMatch(/^types/);
    const badId = await request(server).get('/api/events').set('Last-Event-ID', 'abc').expect(400);
    expect((badId.body as { message: string }).message).toMatch(/^Last-Event-ID/);
  });

  it('publishes config.rejected with YAML paths, and the memory figures when they change', async () => {
    await start({ MODES_WATCH: '0' });
    const stream = await open('/api/events?types=config.,memory');
    const { modesFile } = t.app.get<AppConfig>(APP_CONFIG);
    writeFileSync(modesFile, TEST_MODES_YAML.replace('default_steps: 30', 'default_steps: many'));
    await request(server).post('/api/modes/reload').expect(400);
    const rejected = await stream.next((event) => event.type === 'config.rejected');
    expect(rejected.data).toMatchObject({ trigger: 'api', problems: [{ path: 'modes.sdxl-general.default_steps' }] });

    const registry = t.app.get(HostsService).default.registry;
    // Figures unlike those read at start: the same figures twice are one event.
    const read = await t.modelHost.getMemory();
    const stats = { ...read, usedBytes: read.usedBytes + 12_345 };
    registry.recordMemory(stats);
    registry.recordMemory(stats);
    const memory = await stream.next((event) => event.type === 'memory');
    expect(memory.data).toMatchObject({ host: 'test/cpu', device: stats.device, used_bytes: stats.usedBytes });
    expect(stream.events.filter((event) => event.type === 'memory')).toHaveLength(1);
  });

  it('follows an eviction with the figures after it, even when a read during the unload showed them first', async () => {
    await start({ MODES_WATCH: '0' });
    const stream = await open('/api/events?types=model.,memory');
    const registry = t.app.get(HostsService).default.registry;
    const read = await t.modelHost.getMemory();
    // A poll answered after the model host dropped the key, before the unload's own reply reached the gateway.
    const without = { ...read, usedBytes: read.usedBytes + 54_321 };
    registry.recordMemory(without);
    const early = await stream.next((event) => event.type === 'memory');
    registry.recordUnload('sdxl-general-0123', 'unload');
    const evicted = await stream.next((event) => event.type === 'model.evicted');
    registry.recordMemory(without);
    const after = await stream.next(
      (event) => event.type === 'memory' && (event.id as number) > (evicted.id as number),
    );
    expect((early.id as number) < (evicted.id as number)).toBe(true);
    expect(after.data).toMatchObject({ used_bytes: without.usedBytes });
  });

  it('is closed without an API key when one is set', async () => {
    await start({ API_KEY: 'k1' });
    await request(server).get('/api/events').expect(401);
    const stream = await open('/api/events', { Authorization: 'Bearer k1' });
    expect(stream.status).toBe(200);
  });

  it("gives a plain key only its own jobs' events, live and replayed; an admin key every job's", async () => {
    await start({ API_KEY: 'k-one,k-two', ADMIN_API_KEY: 'k-admin' });
    const as = (key: string) => ({ Authorization: `Bearer ${key}` });
    const one = await open('/api/events', as('k-one'));
    const admin = await open('/api/events', as('k-admin'));
    const submit = async (key: string): Promise<string> => {
      const posted = await request(server)
        .post('/api/jobs')
        .set(as(key))
        .send({ prompt: 'a', mode: 'plain', num_inference_steps: 1 })
        .expect(202);
      return (posted.body as { id: string }).id;
    };
    const mine = await submit('k-one');
    const theirs = await submit('k-two');
    // FIFO: the other key's job ends after this key's, so once the admin has seen it end, so has every stream.
    await admin.next((event) => event.type === 'job.completed' && event.data.id === theirs);
    const jobIds = (client: SseClient): unknown[] => [
      ...new Set(client.events.filter((event) => event.type.startsWith('job.')).map((event) => event.data.id)),
    ];
    expect(jobIds(admin)).toEqual([mine, theirs]);
    expect(jobIds(one)).toEqual([mine]);
    // Not job events: every key sees the model's load.
    expect(one.events.some((event) => event.type === 'model.loaded')).toBe(true);
    const queued = admin.events.find((event) => event.type === 'job.queued' && event.data.id === mine);
    const replayed = await open('/api/events', { ...as('k-one'), 'Last-Event-ID': String((queued?.id as number) - 1) });
    await replayed.next((event) => event.type === 'job.completed' && event.data.id === mine);
    expect(jobIds(replayed)).toEqual([mine]);
  });

  it('refuses the stream past EVENT_STREAMS_MAX with 503 and Retry-After, job streams counted too; takes one again once one closes', async () => {
    await start({ EVENT_STREAMS_MAX: '2' });
    // The job stays running, so its stream stays open.
    let release!: () => void;
    t.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    const first = await open();
    await open(`/api/jobs/${await job()}/events`);
    const refused = await request(server).get('/api/events').expect(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toEqual({
      error: 'event_streams_full',
      message: 'Too many event streams: 2 are open (EVENT_STREAMS_MAX), retry later',
      statusCode: 503,
    });
    first.close();
    await first.ended;
    await waitFor(() => t.app.get(EventStreams).counts.open === 1, { what: 'the closed stream to be counted out' });
    expect((await open()).status).toBe(200);
    release();
  });

  it('ends every open stream when the app closes, so that the HTTP server can close', async () => {
    await start();
    const stream = await open();
    const jobStream = await open(`/api/jobs/${await job('plain', 2)}/events`);
    await t.close();
    await stream.ended;
    await jobStream.ended;
    // afterEach closes it again: harmless.
  });
});
