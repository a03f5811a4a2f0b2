import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import type { ErrorBody } from '../errors/http-error.table.js';

const errorOf = (response: request.Response): ErrorBody => response.body as ErrorBody;

/** The body rules through the whole app (guard, pipe, filter), over the fake model host. */
describe('request bodies', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp();
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  afterEach(() => {
    // Nothing refused here may have reached the model host.
    expect(t.modelHost.generations).toEqual([]);
  });

  it.each([
    ['application/x-www-form-urlencoded', 'prompt=x'],
    ['multipart/form-data; boundary=b', '--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--b--\r\n'],
    ['text/plain', '{"prompt":"x"}'],
    ['application/merge-patch+json', '{"prompt":"x"}'],
  ])('answers 415 to a %s body on POST /generate and POST /api/modes/switch', async (type, body) => {
    for (const path of ['/generate', '/api/modes/switch']) {
      const response = await request(server).post(path).set('Content-Type', type).send(body).expect(415);
      expect(response.body).toEqual({
        error: 'unsupported_media_type',
        message: `POST ${path} takes a JSON body (Content-Type: application/json), not '${type}'`,
        statusCode: 415,
      });
    }
  });

  it('answers 415 to a body without a Content-Type', async () => {
    const response = await request(server)
      .post('/generate')
      .set('Content-Type', '')
      .send(Buffer.from('{"prompt":"x"}'))
      .expect(415);
    expect(errorOf(response).message).toBe(
      "POST /generate takes a JSON body (Content-Type: application/json), not 'none'",
    );
  });

  it.each([
    'text/plain',
    'text/plain;charset=UTF-8',
    'application/x-www-form-urlencoded',
    'Multipart/Form-Data; boundary=x',
  ])(
    'answers 415 to an empty POST with the cross-site Content-Type %s, on a route with a body or without',
    async (type) => {
      for (const path of ['/api/modes/reload', '/generate', '/api/models/unload']) {
        const refused = await request(server).post(path).set('Content-Type', type).expect(415);
        expect(refused.body).toEqual({
          error: 'unsupported_media_type',
          message: `POST ${path} refuses Content-Type '${type}', even with an empty body: send application/json, or no Content-Type`,
          statusCode: 415,
        });
      }
      expect(t.modelHost.calls.filter((call) => !call.startsWith('load sdxl-general'))).toEqual([]);
    },
  );

  it.each([
    ['application/json', '{}'],
    ['text/plain', 'reload'],
    ['application/x-www-form-urlencoded', 'a=b'],
  ])('answers 415 to any body on POST /api/modes/reload (%s), and reloads without one', async (type, body) => {
    const refused = await request(server).post('/api/modes/reload').set('Content-Type', type).send(body).expect(415);
    expect(refused.body).toEqual({
      error: 'unsupported_media_type',
      message: 'POST /api/modes/reload takes no body',
      statusCode: 415,
    });
    await request(server).post('/api/modes/reload').expect(200);
    await request(server).post('/api/modes/reload').set('Content-Type', 'application/json').expect(200);
  });

  it('answers 400 naming the field to JSON nested deeper than 32 levels (3,000 arrays in mode)', async () => {
    const body = `{"prompt":"x","mode":${'['.repeat(3000)}${']'.repeat(3000)}}`;
    const response = await request(server).post('/generate').set('Content-Type', 'application/json').send(body);
    expect(response.status).toBe(400);
    expect(errorOf(response).error).toBe('invalid_request');
    expect(errorOf(response).message).toBe(`mode${'[0]'.repeat(31)}: nested deeper than 32 levels`);
  });

  it('answers 400 to a body of more than 10000 values', async () => {
    const body = JSON.stringify({ prompt: 'x', mode: Array(10_001).fill(0) });
    const response = await request(server).post('/generate').set('Content-Type', 'application/json').send(body);
    expect(response.status).toBe(400);
    expect(errorOf(response).message).toBe('body: more than 10000 values');
  });

  it.each([
    ['{"prompt":"\\ud800"}', 'prompt: must be valid Unicode text (it holds a lone UTF-16 surrogate)'],
    [
      '{"prompt":"x","negative_prompt":"a\\udfffb"}',
      'negative_prompt: must be valid Unicode text (it holds a lone UTF-16 surrogate)',
    ],
    ['{"prompt":"x","\\ud800":1}', '\ud800: must be valid Unicode text (it holds a lone UTF-16 surrogate)'],
    ['{"prompt":"x","__proto__":{"mode":"sd15-fast"}}', '__proto__: unknown field'],
    ['{"prompt":"x","constructor":1}', 'constructor: unknown field'],
    ['{"prompt":"x","mode":null}', 'mode: must be a string'],
    ['{"prompt":"x","seed":null}', 'seed: must be an integer'],
    ['{"prompt":"x","size":null}', 'size: must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['{"prompt":"x","size":" 64x64"}', 'size: must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['{"prompt":"x","size":"64X64"}', 'size: must be WIDTHxHEIGHT, e.g. "512x512"'],
    ['{"prompt":"x","mode":"../sd15-fast"}', expect.stringMatching(/^mode: must be a mode name: /) as unknown],
    [JSON.stringify({ prompt: 'x'.repeat(10_001) }), 'prompt: must be at most 10000 characters'],
    ['[]', 'body: must be a JSON object'],
  ])('answers 400 naming the field (case %#)', async (body, message) => {
    const response = await request(server).post('/generate').set('Content-Type', 'application/json').send(body);
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'invalid_request', message, statusCode: 400 });
  });

  it('answers 400 to a JSON body that is not an object, and 413 past 100 kB', async () => {
    for (const body of ['null', '1', '"x"', '{"prompt":', '{"prompt":"x"}}']) {
      const response = await request(server).post('/generate').set('Content-Type', 'application/json').send(body);
      expect([response.status, errorOf(response).statusCode]).toEqual([400, 400]);
    }
    const large = JSON.stringify({ prompt: 'x'.repeat(200_000) });
    const response = await request(server).post('/generate').set('Content-Type', 'application/json').send(large);
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ error: 'payload_too_large', statusCode: 413 });
  });

  describe('that are fine', () => {
    afterEach(() => t.modelHost.generations.splice(0));

    it('takes JSON with a charset, a surrogate pair, and names like Object members nowhere', async () => {
      const response = await request(server)
        .post('/generate')
        .set('Content-Type', 'application/json; charset=utf-8')
        .send('{"prompt":"a cat \\ud83d\\ude00","size":"64x64"}')
        .expect(200);
      expect(response.headers['x-mode']).toBe('sdxl-general');
      expect(t.modelHost.generations.map((g) => [g.prompt, g.width, g.height])).toEqual([['a cat 😀', 64, 64]]);
    });
  });
});
