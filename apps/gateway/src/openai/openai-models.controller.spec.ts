import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { ModesService } from '../modes/modes.service.js';

describe('GET /v1/models', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp();
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it("lists the modes in OpenAI's shape", async () => {
    const response = await request(server).get('/v1/models').expect(200);
    const created = expect.any(Number) as unknown;
    expect(response.body).toEqual({
      object: 'list',
      data: ['sdxl-general', 'sd15-fast', 'plain'].map((id) => ({
        id,
        object: 'model',
        created,
        owned_by: 'modelhost',
      })),
    });
    const { data } = response.body as { data: { created: number }[] };
    for (const { created: seconds } of data) expect(Math.abs(seconds - Date.now() / 1000)).toBeLessThan(60);
  });

  it('answers one mode, the same as in the list', async () => {
    const list = (await request(server).get('/v1/models').expect(200)).body as { data: unknown[] };
    const one = await request(server).get('/v1/models/sd15-fast').expect(200);
    expect(one.body).toEqual(list.data[1]);
  });

  it("answers an unknown model with OpenAI's 404", async () => {
    const response = await request(server).get('/v1/models/dall-e-3').expect(404);
    expect(response.body).toEqual({
      error: {
        message: "Mode 'dall-e-3' not found (modes: sdxl-general, sd15-fast, plain)",
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_not_found',
      },
    });
  });

  it('keeps a mode created time across a reload that leaves it as it was', async () => {
    const before = (await request(server).get('/v1/models/plain').expect(200)).body as unknown;
    t.app.get(ModesService).reload('api');
    expect((await request(server).get('/v1/models/plain').expect(200)).body).toEqual(before);
  });
});
