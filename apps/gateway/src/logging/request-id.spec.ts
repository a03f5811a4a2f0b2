import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('X-Request-Id', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp();
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it('echoes a sane id the caller sent', async () => {
    const response = await request(server).get('/api/modes').set('X-Request-Id', 'proxy-1234.abc:9_x').expect(200);
    expect(response.headers['x-request-id']).toBe('proxy-1234.abc:9_x');
  });

  it('makes a new UUID per request when none is sent', async () => {
    const first = await request(server).get('/api/modes').expect(200);
    const second = await request(server).get('/health').expect(200);
    expect(first.headers['x-request-id']).toMatch(UUID);
    expect(second.headers['x-request-id']).toMatch(UUID);
    expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'two words'],
    ['with a quote', 'x"y'],
  ])('replaces an id %s with a UUID', async (_why, id) => {
    const response = await request(server).get('/api/modes').set('X-Request-Id', id).expect(200);
    expect(response.headers['x-request-id']).toMatch(UUID);
  });

  it('is set on error replies too', async () => {
    const response = await request(server).get('/no-such-route').set('X-Request-Id', 'err-1').expect(404);
    expect(response.headers['x-request-id']).toBe('err-1');
  });
});
