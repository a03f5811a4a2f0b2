import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { SAMPLER_NAMES } from '../common/samplers.js';
import { OutOfMemoryError } from '../errors/domain.errors.js';
import { WorkerPool as WorkerPoolToken } from '../queue/worker-pool.service.js';
import { waitFor } from '../../testing/wait-for.js';

describe('POST /generate', () => {
  let t: TestApp;
  let server: Server;

  beforeEach(async () => {
    t = await createTestApp({ QUEUE_MAX: '1' });
    server = t.app.getHttpServer() as Server;
  });

  afterEach(() => t.close());

  it("answers a PNG of the default mode, with the mode's defaults and the three headers", async () => {
    const response = await request(server).post('/generate').send({ prompt: 'a beautiful landscape' }).expect(200);
    expect(response.headers['content-type']).toBe('image/png');
    expect(response.headers['x-mode']).toBe('sdxl-general');
    expect(response.headers['x-superres']).toBe('false');
    const seed = Number(response.headers['x-seed']);
    expect(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32).toBe(true);
    expect(response.body).toEqual(Buffer.from('png:a beautiful landscape'));
    expect(t.modelHost.generations).toEqual([
      {
        key: expect.stringMatching(/^sdxl-general-[0-9a-f]{12}$/) as unknown,
        prompt: 'a beautiful landscape',
        negativePrompt: '',
        width: 1024,
        height: 1024,
        steps: 30,
        guidanceScale: 7.5,
        seed,
        superres: false,
        sampler: 'default',
        clipSkip: 0,
      },
    ]);
  });

  it("runs the mode's scheduler and clip skip, and a request's scheduler over the mode's", async () => {
    await request(server).post('/generate').send({ prompt: 'a', mode: 'sd15-fast' }).expect(200);
    await request(server).post('/generate').send({ prompt: 'b', mode: 'sd15-fast', scheduler: 'euler_a' }).expect(200);
    await request(server)
      .post('/generate')
      .send({ prompt: 'c', mode: 'sdxl-general', scheduler: 'dpmpp_2m_karras' })
      .expect(200);
    expect(t.modelHost.generations.map((g) => [g.prompt, g.sampler, g.clipSkip])).toEqual([
      ['a', 'lcm', 2],
      ['b', 'euler_a', 2],
      ['c', 'dpmpp_2m_karras', 0],
    ]);
    // The sampler is chosen per generation: after the start's load, one load per mode switch, never per sampler.
    expect(t.modelHost.calls.filter((call) => call.startsWith('load'))).toEqual([
      'load sdxl-general',
      'load sd15-fast',
      'load sdxl-general',
    ]);
  });

  it('passes explicit parameters through and echoes the seed', async () => {
    const response = await request(server)
      .post('/generate')
      .send({
        mode: 'sd15-fast',
        prompt: 'a portrait',
        negative_prompt: 'blurry',
        size: '896x1152',
        num_inference_steps: 35,
        guidance_scale: 8.0,
        seed: 42,
        superres: true,
      })
      .expect(200);
    expect(response.headers['x-mode']).toBe('sd15-fast');
    expect(response.headers['x-seed']).toBe('42');
    expect(response.headers['x-superres']).toBe('true');
    expect(t.modelHost.generations[0]).toMatchObject({
      prompt: 'a portrait',
      negativePrompt: 'blurry',
      width: 896,
      height: 1152,
      steps: 35,
      guidanceScale: 8,
      seed: 42,
      superres: true,
    });
  });

  it("switches to the mode a request names and uses that mode's defaults", async () => {
    await request(server).post('/generate').send({ prompt: 'one' }).expect(200);
    await request(server).post('/generate').send({ prompt: 'two', mode: 'plain' }).expect(200);
    expect(t.modelHost.calls).toEqual([
      'load sdxl-general',
      'generate sdxl-general one',
      'load plain',
      'generate plain two',
    ]);
    expect(t.modelHost.generations[1]).toMatchObject({ width: 512, height: 512, steps: 4, guidanceScale: 1 });
  });

  it("answers 404 Mode 'xyz' not found for an unknown mode", async () => {
    const response = await request(server).post('/generate').send({ mode: 'xyz', prompt: 'a cat' }).expect(404);
    expect(response.body).toEqual({
      error: 'mode_not_found',
      message: "Mode 'xyz' not found (modes: sdxl-general, sd15-fast, plain)",
      statusCode: 404,
    });
  });

  it.each([
    ['/generate', { mode: 'plain', prompt: 'x' }],
    ['/api/jobs', { mode: 'plain', prompt: 'x' }],
    ['/v1/images/generations', { model: 'plain', prompt: 'x' }],
  ])(
    'answers %s for a mode whose model file is missing with 409 naming the file, and queues nothing',
    async (url, body) => {
      t.files.missing.add('/models/plain.safetensors');
      const response = await request(server).post(url).send(body).expect(409);
      expect(JSON.stringify(response.body)).toContain(
        "Mode 'plain' cannot be loaded: file not found: /models/plain.safetensors",
      );
      expect(t.modelHost.generations).toEqual([]);
    },
  );

  it.each([
    [{}, 'prompt: is required'],
    [{ prompt: '' }, 'prompt: must not be empty'],
    [{ prompt: '   ' }, 'prompt: must not be empty'],
    [{ prompt: 3 }, 'prompt: must be a string'],
    [{ prompt: 'x', mode: 5 }, 'mode: must be a string'],
    [{ prompt: 'x', size: '64by64' }, 'size: must be WIDTHxHEIGHT, e.g. "512x512"'],
    [{ prompt: 'x', size: '60x64' }, 'size: width and height must both be multiples of 8'],
    [{ prompt: 'x', size: '4096x64' }, 'size: width and height must each be from 8 to 2048'],
    [{ prompt: 'x', num_inference_steps: 0 }, 'num_inference_steps: must be at least 1'],
    [{ prompt: 'x', num_inference_steps: 1001 }, 'num_inference_steps: must be at most 1000'],
    [{ prompt: 'x', num_inference_steps: 2.5 }, 'num_inference_steps: must be an integer'],
    [{ prompt: 'x', guidance_scale: 'high' }, 'guidance_scale: must be a number'],
    [{ prompt: 'x', guidance_scale: 31 }, 'guidance_scale: must be at most 30'],
    [{ prompt: 'x', seed: -1 }, 'seed: must be at least 0'],
    [{ prompt: 'x', seed: '42' }, 'seed: must be an integer'],
    [{ prompt: 'x', seed: 2 ** 53 }, `seed: must be at most ${Number.MAX_SAFE_INTEGER}`],
    [{ prompt: 'x', superres: 'yes' }, 'superres: must be true or false'],
    [{ prompt: 'x', colour: 'red' }, 'colour: unknown field'],
    [{ prompt: 'x', steps: 20 }, 'steps: unknown field; did you mean num_inference_steps?'],
    [{ prompt: 'x', cfg_scale: 7 }, 'cfg_scale: unknown field; did you mean guidance_scale?'],
    [{ prompt: 'x', width: 512 }, 'width: unknown field; did you mean size ("WIDTHxHEIGHT")?'],
    [{ prompt: 'x', sampler: 'euler' }, 'sampler: unknown field; did you mean scheduler?'],
    [
      { prompt: 'x', mode: 'sd15-fast', num_inference_steps: 51 },
      'num_inference_steps: the lcm sampler takes at most 50 steps, got 51',
    ],
    [
      { prompt: 'x', scheduler: 'lcm', num_inference_steps: 60 },
      'num_inference_steps: the lcm sampler takes at most 50 steps, got 60',
    ],
    [{ prompt: 'x', scheduler: 'k_euler' }, `scheduler: must be one of ${SAMPLER_NAMES.join(', ')}`],
    [{ prompt: 'x', scheduler: 1 }, `scheduler: must be one of ${SAMPLER_NAMES.join(', ')}`],
    [{ prompt: 'x', superres: true }, "superres: mode 'sdxl-general' has no superres model"],
  ])('answers 400 naming the field for %j', async (body, message) => {
    const response = await request(server).post('/generate').send(body).expect(400);
    expect(response.body).toEqual({ error: 'invalid_request', message, statusCode: 400 });
    expect(t.modelHost.calls).toEqual(['load sdxl-general']);
  });

  it('lists every problem of a request', async () => {
    const response = await request(server).post('/generate').send({ prompt: '', seed: -1, colour: 'red' }).expect(400);
    expect(response.body).toEqual({
      error: 'invalid_request',
      message: 'colour: unknown field; prompt: must not be empty; seed: must be at least 0',
      statusCode: 400,
    });
  });

  it('answers 400 for a body that is not JSON, or not an object', async () => {
    const broken = await request(server)
      .post('/generate')
      .set('Content-Type', 'application/json')
      .send('{"prompt": ')
      .expect(400);
    expect(broken.body).toEqual({ error: 'bad_request', message: 'Unexpected end of JSON input', statusCode: 400 });
    const list = await request(server)
      .post('/generate')
      .send([{ prompt: 'x' }])
      .expect(400);
    expect(list.body).toEqual({ error: 'invalid_request', message: 'body: must be a JSON object', statusCode: 400 });
  });

  it('answers 503 out of memory when the model host has no room', async () => {
    t.modelHost.failGenerateOnce = new OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB');
    const response = await request(server).post('/generate').send({ prompt: 'x' }).expect(503);
    expect(response.body).toEqual({
      error: 'out_of_memory',
      message: 'Device out of memory: CUDA out of memory. Tried to allocate 2.00 GiB',
      statusCode: 503,
    });
  });

  it('answers 429 with Retry-After once QUEUE_MAX jobs wait', async () => {
    let release!: () => void;
    t.modelHost.hold = new Promise((resolve) => (release = resolve));
    const running = request(server)
      .post('/generate')
      .send({ prompt: 'running' })
      .then((r) => r);
    await waitFor(() => t.modelHost.generations.length === 1, { what: 'the first generation to start' });
    const waiting = request(server)
      .post('/generate')
      .send({ prompt: 'waiting' })
      .then((r) => r);
    await waitFor(() => t.app.get(WorkerPoolToken).queueSize === 1, { what: 'one job to queue' });
    const refused = await request(server).post('/generate').send({ prompt: 'refused' }).expect(429);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toEqual({
      error: 'queue_full',
      message: 'Queue full: 1 waiting jobs (QUEUE_MAX), retry later',
      statusCode: 429,
    });
    release();
    expect((await running).status).toBe(200);
    expect((await waiting).status).toBe(200);
  });

  it('cancels the running generation when the client goes away', async () => {
    t.modelHost.hold = new Promise(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/generate',
      headers: { 'Content-Type': 'application/json' },
    });
    client.on('error', () => undefined);
    client.end(JSON.stringify({ prompt: 'abandoned' }));
    await waitFor(() => t.modelHost.signals.length === 1, { what: 'the generation to start' });
    client.destroy();
    await waitFor(() => t.modelHost.signals[0]?.aborted === true, { what: 'the generation to be cancelled' });
    t.modelHost.hold = undefined;
    await request(server).post('/generate').send({ prompt: 'next' }).expect(200);
  });

  it('answers unknown routes in the same JSON shape', async () => {
    const response = await request(server).get('/nope').expect(404);
    expect(response.body).toEqual({ error: 'not_found', message: 'Cannot GET /nope', statusCode: 404 });
  });
});
