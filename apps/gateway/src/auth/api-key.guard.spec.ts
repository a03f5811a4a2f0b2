import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import type { ErrorBody } from '../errors/http-error.table.js';
import { setupOpenApi } from '../openapi/openapi.js';

const UNAUTHORIZED = {
  error: 'unauthorized',
  message: 'an API key is required: send "Authorization: Bearer <key>" or "X-API-Key: <key>"',
  statusCode: 401,
};

/** The global key guard through the whole app (guard, filter, Swagger's routes), over the fake model host. */
describe('API keys', () => {
  describe('with API_KEY and ADMIN_API_KEY set', () => {
    let t: TestApp;
    let server: Server;

    beforeAll(async () => {
      t = await createTestApp({ API_KEY: 'k-one, k-two', ADMIN_API_KEY: 'k-admin' }, undefined, setupOpenApi);
      server = t.app.getHttpServer() as Server;
    });

    afterAll(() => t.close());

    it('answers 401 with the error body and WWW-Authenticate to a request without a key', async () => {
      const response = await request(server).get('/api/modes').expect(401);
      expect(response.body).toEqual(UNAUTHORIZED);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    it('answers 401 to a wrong key, of any length, in either header', async () => {
      for (const key of ['k-on', 'k-one-and-more', 'K-ONE', '']) {
        const bearer = await request(server).get('/api/modes').set('Authorization', `Bearer ${key}`).expect(401);
        expect((bearer.body as ErrorBody).error).toBe('unauthorized');
        await request(server).get('/api/modes').set('X-API-Key', key).expect(401);
      }
      await request(server).get('/api/modes').set('Authorization', 'Basic k-one').expect(401);
    });

    it('takes every listed key in both header forms, and the admin key too', async () => {
      for (const key of ['k-one', 'k-two', 'k-admin']) {
        await request(server).get('/api/modes').set('Authorization', `Bearer ${key}`).expect(200);
        await request(server).get('/api/modes').set('authorization', `bearer ${key}`).expect(200);
        await request(server).get('/api/modes').set('X-API-Key', key).expect(200);
      }
    });

    it('leaves /health open', async () => {
      await request(server).get('/health').expect(200);
    });

    it('answers 403 on admin routes to a plain key, 401 without one, and serves the admin key', async () => {
      const forbidden = await request(server).post('/api/modes/reload').set('X-API-Key', 'k-one').expect(403);
      expect(forbidden.body).toEqual({
        error: 'forbidden',
        message: 'this route needs an admin key (ADMIN_API_KEY)',
        statusCode: 403,
      });
      await request(server).post('/api/modes/reload').expect(401);
      await request(server).post('/api/modes/switch').set('X-API-Key', 'k-two').send({ mode: 'plain' }).expect(403);
      await request(server).post('/api/modes/reload').set('X-API-Key', 'k-admin').expect(200);
    });

    it('checks the key before the body: a refused request learns nothing about its body', async () => {
      await request(server).post('/generate').set('Content-Type', 'text/plain').send('x').expect(401);
      expect(t.modelHost.generations).toEqual([]);
    });

    it('keeps the OpenAPI document and Swagger UI behind the key', async () => {
      await request(server).get('/docs-json').expect(401);
      await request(server).get('/docs').expect(401);
      const document = await request(server).get('/docs-json').set('X-API-Key', 'k-one').expect(200);
      const paths = (document.body as { paths: unknown }).paths as Record<
        string,
        Record<string, { security?: unknown[]; responses: object }>
      >;
      expect(paths['/health']?.get?.security).toEqual([]);
      expect(paths['/api/modes']?.get?.security).toEqual([{ bearer: [] }, { 'api-key': [] }]);
      expect(Object.keys(paths['/api/modes']?.get?.responses ?? {})).toContain('401');
      expect(Object.keys(paths['/api/modes/reload']?.post?.responses ?? {})).toContain('403');
      expect(Object.keys(paths['/api/modes']?.get?.responses ?? {})).not.toContain('403');
      expect(JSON.stringify(document.body)).not.toContain('x-access');
    });
  });

  describe('with only ADMIN_API_KEY set', () => {
    let t: TestApp;
    let server: Server;

    beforeAll(async () => {
      t = await createTestApp({ ADMIN_API_KEY: 'k-admin' });
      server = t.app.getHttpServer() as Server;
    });

    afterAll(() => t.close());

    it('leaves ordinary routes open and closes the admin ones', async () => {
      await request(server).get('/api/modes').expect(200);
      await request(server).post('/api/modes/reload').expect(401);
      await request(server).post('/api/modes/reload').set('Authorization', 'Bearer k-admin').expect(200);
    });
  });

  describe('without keys', () => {
    let t: TestApp;

    beforeAll(async () => {
      t = await createTestApp({}, undefined, setupOpenApi);
    });

    afterAll(() => t.close());

    it('serves everything without a key', async () => {
      const server = t.app.getHttpServer() as Server;
      await request(server).get('/api/modes').expect(200);
      await request(server).post('/api/modes/reload').expect(200);
      await request(server).get('/docs-json').expect(200);
    });
  });
});
