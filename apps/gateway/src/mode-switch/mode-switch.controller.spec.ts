import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { RegistryService } from '../registry/registry.service.js';

describe('POST /api/modes/switch', () => {
  let t: TestApp;
  let server: Server;

  beforeEach(async () => {
    t = await createTestApp({ QUEUE_MAX: '2' });
    server = t.app.getHttpServer() as Server;
  });

  afterEach(() => t.close());

  async function idle(): Promise<void> {
    const pool = t.app.get(WorkerPool);
    while (pool.busy || pool.queueSize > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  it("answers the spec's keys at once and switches in its turn", async () => {
    await idle();
    expect(t.app.get(RegistryService).currentMode).toBe('sdxl-general');
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'sd15-fast' }).expect(200))
      .body;
    expect(Object.keys(body as object)).toEqual(['status', 'from_mode', 'to_mode', 'message']);
    expect(body).toEqual({
      status: 'queued',
      from_mode: 'sdxl-general',
      to_mode: 'sd15-fast',
      message: 'Mode switch queued. Will switch after 0 pending jobs.',
    });
    await idle();
    expect(t.app.get(RegistryService).currentMode).toBe('sd15-fast');
    // A request that names no mode now runs in the mode switched to.
    const generated = await request(server).post('/generate').send({ prompt: 'after' }).expect(200);
    expect(generated.headers['x-mode']).toBe('sd15-fast');
  });

  it('counts the running job and the ones waiting ahead, and says the mode it switches from', async () => {
    await idle();
    let release!: () => void;
    t.sidecar.hold = new Promise((resolve) => (release = resolve));
    const running = request(server)
      .post('/generate')
      .send({ prompt: 'running', mode: 'plain' })
      .then((r) => r);
    while (t.sidecar.generations.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const waiting = request(server)
      .post('/generate')
      .send({ prompt: 'waiting', mode: 'plain' })
      .then((r) => r);
    while (t.app.get(WorkerPool).queueSize === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'sd15-fast' }).expect(200))
      .body;
    expect(body).toEqual({
      status: 'queued',
      from_mode: 'plain',
      to_mode: 'sd15-fast',
      message: 'Mode switch queued. Will switch after 2 pending jobs.',
    });
    // QUEUE_MAX=2 waiting: the next switch finds the queue full.
    const full = await request(server).post('/api/modes/switch').send({ mode: 'plain' }).expect(429);
    expect(full.headers['retry-after']).toBe('5');
    release();
    expect((await running).status).toBe(200);
    expect((await waiting).status).toBe(200);
    await idle();
    expect(t.sidecar.calls.slice(-4)).toEqual([
      'load plain',
      'generate plain running',
      'generate plain waiting',
      'load sd15-fast',
    ]);
  });

  it("answers 404 Mode 'xyz' not found for an unknown mode, and queues nothing", async () => {
    await idle();
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'xyz' }).expect(404)).body;
    expect(body).toEqual({ error: 'mode_not_found', message: "Mode 'xyz' not found", statusCode: 404 });
    expect(t.sidecar.calls).toEqual(['load sdxl-general']);
  });

  it.each([
    [{}, 'mode: is required'],
    [{ mode: '' }, 'mode: must not be empty'],
    [{ mode: 3 }, 'mode: must be a string'],
    [{ mode: 'plain', now: true }, 'now: unknown field'],
  ])('answers 400 naming the field for %j', async (body, message) => {
    const response = await request(server).post('/api/modes/switch').send(body).expect(400);
    expect(response.body).toEqual({ error: 'invalid_request', message, statusCode: 400 });
  });
});
