import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { waitFor } from '../../testing/wait-for.js';
import { ModelLoadError } from '../errors/domain.errors.js';
import { WorkerPool } from '../queue/worker-pool.service.js';
import { HostsService } from '../model-host/hosts.service.js';

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
    await waitFor(() => !pool.busy && pool.queueSize === 0, { what: 'the queue to be empty' });
  }

  it("answers the spec's keys at once and switches in its turn", async () => {
    await idle();
    expect(t.app.get(HostsService).default.registry.currentMode).toBe('sdxl-general');
    const reply = await request(server).post('/api/modes/switch').send({ mode: 'sd15-fast' }).expect(200);
    const body = reply.body as { id: string };
    expect(Object.keys(body)).toEqual(['status', 'from_mode', 'to_mode', 'message', 'id']);
    expect(body).toEqual({
      status: 'queued',
      from_mode: 'sdxl-general',
      to_mode: 'sd15-fast',
      message: 'Mode switch queued. Will switch after 0 pending jobs.',
      id: expect.any(String) as unknown,
    });
    // A switch is a job: the id and the Location header lead to its record.
    expect(reply.headers.location).toBe(`/api/jobs/${body.id}`);
    await idle();
    const job = await request(server).get(reply.headers.location).expect(200);
    expect(job.body).toMatchObject({ id: body.id, kind: 'mode-switch', state: 'completed' });
    expect(t.app.get(HostsService).default.registry.currentMode).toBe('sd15-fast');
    // A request that names no mode now runs in the mode switched to.
    const generated = await request(server).post('/generate').send({ prompt: 'after' }).expect(200);
    expect(generated.headers['x-mode']).toBe('sd15-fast');
  });

  it('counts the running job and the ones waiting ahead, and says the mode it switches from', async () => {
    await idle();
    let release!: () => void;
    t.modelHost.hold = new Promise((resolve) => (release = resolve));
    const running = request(server)
      .post('/generate')
      .send({ prompt: 'running', mode: 'plain' })
      .then((r) => r);
    await waitFor(() => t.modelHost.generations.length > 0, { what: 'the generation to start' });
    const waiting = request(server)
      .post('/generate')
      .send({ prompt: 'waiting', mode: 'plain' })
      .then((r) => r);
    await waitFor(async () => (await t.app.get(WorkerPool).queueSize) > 0, { what: 'the second request to queue' });
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'sd15-fast' }).expect(200))
      .body;
    expect(body).toEqual({
      status: 'queued',
      from_mode: 'plain',
      to_mode: 'sd15-fast',
      message: 'Mode switch queued. Will switch after 2 pending jobs.',
      id: expect.any(String) as unknown,
    });
    // QUEUE_MAX=2 waiting: the next switch finds the queue full.
    const full = await request(server).post('/api/modes/switch').send({ mode: 'plain' }).expect(429);
    expect(full.headers['retry-after']).toBe('5');
    release();
    expect((await running).status).toBe(200);
    expect((await waiting).status).toBe(200);
    await idle();
    expect(t.modelHost.calls.slice(-4)).toEqual([
      'load plain',
      'generate plain running',
      'generate plain waiting',
      'load sd15-fast',
    ]);
  });

  it("answers 404 Mode 'xyz' not found for an unknown mode, and queues nothing", async () => {
    await idle();
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'xyz' }).expect(404)).body;
    expect(body).toEqual({
      error: 'mode_not_found',
      message: "Mode 'xyz' not found (modes: sdxl-general, sd15-fast, plain)",
      statusCode: 404,
    });
    expect(t.modelHost.calls).toEqual(['load sdxl-general']);
  });

  it('refuses at once, naming the file, a switch to a mode whose file is gone, and queues nothing', async () => {
    await idle();
    t.files.missing.add('/models/sd15/dreamshaper-lcm.safetensors');
    const body: unknown = (await request(server).post('/api/modes/switch').send({ mode: 'sd15-fast' }).expect(409))
      .body;
    expect(body).toEqual({
      error: 'model_file_missing',
      message: "Mode 'sd15-fast' cannot be loaded: file not found: /models/sd15/dreamshaper-lcm.safetensors",
      statusCode: 409,
    });
    expect(t.modelHost.calls).toEqual(['load sdxl-general']);
  });

  it('shows a switch that failed in its turn as last_switch_error, until a switch succeeds', async () => {
    await idle();
    const status = async (): Promise<Record<string, unknown>> =>
      (await request(server).get('/api/models/status').expect(200)).body as Record<string, unknown>;
    expect((await status()).last_switch_error).toBeNull();
    t.modelHost.failLoad = new ModelLoadError('plain', 'model file not found: /models/plain.safetensors');
    await request(server).post('/api/modes/switch').send({ mode: 'plain' }).expect(200);
    await idle();
    const failed = (await status()).last_switch_error as Record<string, unknown>;
    expect(failed).toEqual({
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
      mode: 'plain',
      error: 'model_load_failed',
      message: "Mode 'plain' could not be loaded: model file not found: /models/plain.safetensors",
    });
    t.modelHost.failLoad = undefined;
    await request(server).post('/api/modes/switch').send({ mode: 'plain' }).expect(200);
    await idle();
    expect((await status()).last_switch_error).toBeNull();
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
