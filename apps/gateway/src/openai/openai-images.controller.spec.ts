import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { waitFor } from '../../testing/wait-for.js';
import { OutOfMemoryError } from '../errors/domain.errors.js';
import type { JobRecord } from '../queue/job-record.types.js';
import type { ImagesResponseDto } from './dto/images-response.dto.js';

const GENERATIONS = '/v1/images/generations';

/** The fake model host's PNG for a prompt. */
const b64 = (prompt: string): string => Buffer.from(`png:${prompt}`).toString('base64');

const openAiError = (message: string, param: string | null, code: string, type = 'invalid_request_error'): unknown => ({
  error: { message, type, param, code },
});

describe('POST /v1/images/generations', () => {
  let t: TestApp;
  let server: Server;

  beforeEach(async () => {
    t = await createTestApp({ ALLOWED_HOSTS: 'gen.example' });
    server = t.app.getHttpServer() as Server;
  });

  afterEach(() => t.close());

  /** The generation jobs, newest first (the default mode's load at start is a job too). */
  const jobs = async (): Promise<JobRecord[]> =>
    ((await request(server).get('/api/jobs').expect(200)).body as { jobs: JobRecord[] }).jobs.filter(
      (job) => job.kind === 'generation',
    );

  it("answers one base64 PNG of the default mode with the mode's defaults", async () => {
    const response = await request(server).post(GENERATIONS).send({ prompt: 'a lighthouse' }).expect(200);
    const body = response.body as ImagesResponseDto;
    expect(body).toEqual({
      created: expect.any(Number) as unknown,
      data: [{ b64_json: b64('a lighthouse'), seed: t.modelHost.generations[0]?.seed }],
    });
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
    expect(t.modelHost.generations).toEqual([
      expect.objectContaining({ prompt: 'a lighthouse', width: 1024, height: 1024, steps: 30, guidanceScale: 7.5 }),
    ]);
  });

  it('runs the default mode when no model is named, even after a switch to another', async () => {
    await request(server).post('/generate').send({ prompt: 'one', mode: 'plain' }).expect(200);
    await request(server).post(GENERATIONS).send({ prompt: 'two' }).expect(200);
    expect(t.modelHost.calls.filter((call) => call.startsWith('generate'))).toEqual([
      'generate plain one',
      'generate sdxl-general two',
    ]);
  });

  it('passes our own fields through and takes size, model and the ignored OpenAI fields', async () => {
    await request(server)
      .post(GENERATIONS)
      .send({
        model: 'sd15-fast',
        prompt: 'a portrait',
        negative_prompt: 'blurry',
        size: '64x48',
        steps: 2,
        guidance_scale: 3.5,
        seed: 42,
        user: 'user-1234',
        quality: 'hd',
        style: 'natural',
        moderation: 'low',
        output_format: 'png',
        background: 'opaque',
        stream: false,
      })
      .expect(200);
    expect(t.modelHost.generations).toEqual([
      expect.objectContaining({
        prompt: 'a portrait',
        negativePrompt: 'blurry',
        width: 64,
        height: 48,
        steps: 2,
        guidanceScale: 3.5,
        seed: 42,
        sampler: 'lcm',
      }),
    ]);
  });

  it("takes null, as OpenAI's API does, and size auto as the mode's defaults", async () => {
    await request(server)
      .post(GENERATIONS)
      .send({ prompt: 'x', model: 'plain', n: null, size: 'auto', response_format: null, seed: 5, steps: null })
      .expect(200);
    expect(t.modelHost.generations).toEqual([expect.objectContaining({ width: 512, height: 512, steps: 4, seed: 5 })]);
  });

  it('makes n images as n jobs, with seeds seed, seed + 1, ...', async () => {
    const response = await request(server).post(GENERATIONS).send({ prompt: 'p', n: 3, seed: 7 }).expect(200);
    expect((response.body as ImagesResponseDto).data.map((image) => image.seed)).toEqual([7, 8, 9]);
    expect(t.modelHost.generations.map((g) => g.seed)).toEqual([7, 8, 9]);
    expect((await jobs()).map((job) => [job.kind, job.state, job.seed])).toEqual([
      ['generation', 'completed', 9],
      ['generation', 'completed', 8],
      ['generation', 'completed', 7],
    ]);
  });

  it('gives n images distinct random seeds when no seed is given', async () => {
    const response = await request(server).post(GENERATIONS).send({ prompt: 'p', n: 10 }).expect(200);
    const seeds = (response.body as ImagesResponseDto).data.map((image) => image.seed);
    expect(new Set(seeds).size).toBe(10);
    expect(t.modelHost.generations.map((g) => g.seed)).toEqual(seeds);
  });

  it("answers URLs of the jobs' images, from the Host header", async () => {
    const response = await request(server)
      .post(GENERATIONS)
      .set('Host', 'gen.example:8080')
      .send({ prompt: 'p', n: 2, response_format: 'url' })
      .expect(200);
    const data = (response.body as ImagesResponseDto).data;
    const ids = (await jobs()).map((job) => job.id).reverse();
    expect(data.map((image) => image.url)).toEqual(ids.map((id) => `http://gen.example:8080/api/jobs/${id}/image`));
    expect(data.every((image) => image.b64_json === undefined)).toBe(true);
    const png = await request(server).get(new URL(data[1].url!).pathname).expect(200);
    expect(png.headers['x-seed']).toBe(String(data[1].seed));
    expect(png.body).toEqual(Buffer.from('png:p'));
  });

  it('never builds a URL on a Host it does not answer to', async () => {
    const response = await request(server)
      .post(GENERATIONS)
      .set('Host', 'rebind.attacker.example:8080')
      .send({ prompt: 'p', response_format: 'url' })
      .expect(403);
    expect((response.body as { error: { code: string } }).error.code).toBe('forbidden');
    expect(t.modelHost.generations).toEqual([]);
  });

  it('refuses response_format url without PUBLIC_URL when the server answers to any Host', async () => {
    const open = await createTestApp({ HOST: '0.0.0.0' });
    try {
      const response = await request(open.app.getHttpServer() as Server)
        .post(GENERATIONS)
        .set('Host', 'anything.example')
        .send({ prompt: 'p', response_format: 'url' })
        .expect(400);
      expect(response.body).toEqual(
        openAiError(
          'response_format: url needs PUBLIC_URL (or ALLOWED_HOSTS naming the Host clients use): this server ' +
            'answers to any Host, so it builds no URL from one',
          'response_format',
          'invalid_request',
        ),
      );
      expect(open.modelHost.generations).toEqual([]);
    } finally {
      await open.close();
    }
  });

  it.each([
    [{}, 'prompt: is required', 'prompt'],
    [{ prompt: ' ' }, 'prompt: must not be empty', 'prompt'],
    [{ prompt: 'x', n: 0 }, 'n: must be at least 1', 'n'],
    [{ prompt: 'x', n: 11 }, 'n: must be at most 10', 'n'],
    [{ prompt: 'x', model: '' }, 'model: must not be empty', 'model'],
    [{ prompt: 'x', size: '60x64' }, 'size: width and height must both be multiples of 8', 'size'],
    [{ prompt: 'x', size: 512 }, 'size: must be WIDTHxHEIGHT, e.g. "512x512"', 'size'],
    [{ prompt: 'x', response_format: 'png' }, 'response_format: must be one of b64_json, url', 'response_format'],
    [{ prompt: 'x', steps: 1001 }, 'steps: must be at most 1000', 'steps'],
    [{ prompt: 'x', guidance_scale: 'high' }, 'guidance_scale: must be a number', 'guidance_scale'],
    [{ prompt: 'x', quality: 'ultra' }, 'quality: must be one of auto, standard, hd, low, medium, high', 'quality'],
    [
      { prompt: 'x', output_format: 'jpeg' },
      'output_format: must be png: this server makes PNG images only',
      'output_format',
    ],
    [
      { prompt: 'x', background: 'transparent' },
      'background: must be auto or opaque: this server makes no transparent backgrounds',
      'background',
    ],
    [
      { prompt: 'x', stream: true },
      'stream: must be false: streaming is not supported (GET /api/jobs/{id}/events streams a job)',
      'stream',
    ],
    [
      { prompt: 'x', output_compression: 80 },
      'output_compression: is not supported: it applies to jpeg and webp, and this server makes PNG images only',
      'output_compression',
    ],
    [{ prompt: 'x', colour: 'red' }, 'colour: unknown field', 'colour'],
    [
      { prompt: 'x', n: 2, seed: Number.MAX_SAFE_INTEGER },
      `seed: must be at most ${Number.MAX_SAFE_INTEGER - 1} when n is 2 (image i gets seed + i)`,
      'seed',
    ],
  ])("answers 400 in OpenAI's shape naming the param for %j", async (body, message, param) => {
    const response = await request(server).post(GENERATIONS).send(body).expect(400);
    expect(response.body).toEqual(openAiError(message, param, 'invalid_request'));
    expect(t.modelHost.generations).toEqual([]);
  });

  it("answers an unknown model with OpenAI's 404 model_not_found", async () => {
    const response = await request(server).post(GENERATIONS).send({ prompt: 'x', model: 'dall-e-3' }).expect(404);
    expect(response.body).toEqual(
      openAiError("Mode 'dall-e-3' not found (modes: sdxl-general, sd15-fast, plain)", 'model', 'model_not_found'),
    );
  });

  it("answers a body that is not JSON, and an unknown /v1 route, in OpenAI's shape", async () => {
    const broken = await request(server)
      .post(GENERATIONS)
      .set('Content-Type', 'application/json')
      .send('{"prompt": ')
      .expect(400);
    expect(broken.body).toEqual(openAiError('Unexpected end of JSON input', null, 'bad_request'));
    const form = await request(server).post(GENERATIONS).type('form').send({ prompt: 'x' }).expect(415);
    expect(form.body).toMatchObject({ error: { type: 'invalid_request_error', code: 'unsupported_media_type' } });
    const unknown = await request(server).get('/v1/chat/completions').expect(404);
    expect(unknown.body).toEqual(openAiError('Cannot GET /v1/chat/completions', null, 'not_found'));
    // The rest of the API keeps its own shape.
    const ours = await request(server).get('/v1x').expect(404);
    expect(ours.body).toEqual({ error: 'not_found', message: 'Cannot GET /v1x', statusCode: 404 });
  });

  it('answers 429 when the queue has no room for all n, and leaves none of them queued', async () => {
    await t.close();
    t = await createTestApp({ QUEUE_MAX: '2' });
    server = t.app.getHttpServer() as Server;
    t.modelHost.hold = new Promise(() => undefined);
    // At most two wait (one more may already run): the fourth image at the latest finds the queue full.
    const response = await request(server).post(GENERATIONS).send({ prompt: 'p', n: 4 }).expect(429);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.body).toEqual(
      openAiError('Queue full: 2 waiting jobs (QUEUE_MAX), retry later', null, 'queue_full', 'rate_limit_error'),
    );
    await waitFor(
      async () => {
        const states = (await jobs()).map((job) => job.state);
        return states.length >= 2 && states.every((state) => state === 'cancelled');
      },
      { what: 'the jobs already submitted to be cancelled' },
    );
    t.modelHost.hold = undefined;
    await request(server).post(GENERATIONS).send({ prompt: 'next', n: 2 }).expect(200);
  });

  it("answers a failed job's error in OpenAI's shape", async () => {
    t.modelHost.failGenerateOnce = new OutOfMemoryError('CUDA out of memory');
    const response = await request(server).post(GENERATIONS).send({ prompt: 'p' }).expect(503);
    expect(response.body).toEqual(
      openAiError('Device out of memory: CUDA out of memory', null, 'out_of_memory', 'server_error'),
    );
  });

  it('cancels its jobs, the running one and the queued one, when the client goes away', async () => {
    t.modelHost.hold = new Promise(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: GENERATIONS,
      headers: { 'Content-Type': 'application/json' },
    });
    client.on('error', () => undefined);
    client.end(JSON.stringify({ prompt: 'abandoned', n: 2 }));
    await waitFor(() => t.modelHost.signals.length === 1, { what: 'the first generation to start' });
    client.destroy();
    await waitFor(() => t.modelHost.signals[0]?.aborted === true, { what: 'the running generation to be cancelled' });
    await waitFor(async () => (await jobs()).map((job) => job.state).join() === 'cancelled,cancelled', {
      what: 'both jobs to end cancelled',
    });
    expect(t.modelHost.generations).toHaveLength(1);
  });
});

describe('/v1 with API_KEY set', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp({ API_KEY: 'k-one', PUBLIC_URL: 'https://images.example.com/gen/' });
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it("answers 401 in OpenAI's shape, with WWW-Authenticate", async () => {
    for (const path of ['/v1/models', '/v1/models/plain']) {
      const response = await request(server).get(path).expect(401);
      expect(response.body).toEqual(
        openAiError(
          'an API key is required: send "Authorization: Bearer <key>" or "X-API-Key: <key>"',
          null,
          'invalid_api_key',
        ),
      );
      expect(response.headers['www-authenticate']).toBe('Bearer');
    }
    const wrong = await request(server).post(GENERATIONS).set('Authorization', 'Bearer k-two').send({ prompt: 'x' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_api_key' } });
  });

  it('serves the key, and builds image URLs on PUBLIC_URL', async () => {
    const response = await request(server)
      .post(GENERATIONS)
      .set('Authorization', 'Bearer k-one')
      .set('Host', 'localhost:4200')
      .send({ prompt: 'x', response_format: 'url' })
      .expect(200);
    const { url } = (response.body as ImagesResponseDto).data[0];
    expect(url).toMatch(/^https:\/\/images\.example\.com\/gen\/api\/jobs\/[0-9a-f-]{36}\/image$/);
  });
});
