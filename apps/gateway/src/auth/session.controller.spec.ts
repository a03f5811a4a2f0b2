import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { SESSION_COOKIE } from './sessions.js';

const COOKIE = new RegExp(`^${SESSION_COOKIE}=([A-Za-z0-9_-]{43}); Path=/; Max-Age=43200; HttpOnly; SameSite=Strict$`);

/** The browser login through the whole app: the cookie it sets counts as the key, for the guard and for callers. */
describe('POST /api/session', () => {
  describe('with API_KEY and ADMIN_API_KEY set', () => {
    let t: TestApp;
    let server: Server;
    beforeAll(async () => {
      t = await createTestApp({ API_KEY: 'k-one', ADMIN_API_KEY: 'k-admin' });
      server = t.app.getHttpServer() as Server;
    });
    afterAll(() => t.close());

    async function login(key: string): Promise<string> {
      const response = await request(server).post('/api/session').send({ key }).expect(200);
      const setCookie = (response.headers['set-cookie'] as unknown as string[])[0] ?? '';
      const token = COOKIE.exec(setCookie)?.[1];
      if (!token) throw new Error(`no session cookie in ${setCookie}`);
      return `${SESSION_COOKIE}=${token}`;
    }

    it('says a key is needed and that this browser has none', async () => {
      const response = await request(server).get('/api/session').expect(200);
      expect(response.body).toEqual({ auth_required: true, authenticated: false, admin: false });
    });

    it('refuses a wrong key with 401 and sets no cookie', async () => {
      const response = await request(server).post('/api/session').send({ key: 'k-on' }).expect(401);
      expect(response.body).toEqual({ error: 'unauthorized', message: 'the API key is not valid', statusCode: 401 });
      expect(response.headers['set-cookie']).toBeUndefined();
    });

    it('refuses a body without a key, and a form post, before looking at it', async () => {
      const missing = await request(server).post('/api/session').send({}).expect(400);
      expect((missing.body as { message: string }).message).toContain('key');
      await request(server).post('/api/session').type('form').send('key=k-one').expect(415);
    });

    it("sets a cookie that opens the key's routes, not the admin ones, and never holds the key", async () => {
      const cookie = await login('k-one');
      expect(cookie).not.toContain('k-one');
      await request(server).get('/api/modes').set('Cookie', cookie).expect(200);
      await request(server).post('/api/modes/reload').set('Cookie', cookie).expect(403);
      const state = await request(server).get('/api/session').set('Cookie', `other=1; ${cookie}`).expect(200);
      expect(state.body).toEqual({ auth_required: true, authenticated: true, admin: false });
    });

    it('gives an admin key its admin routes through the cookie', async () => {
      const cookie = await login('k-admin');
      await request(server).post('/api/modes/reload').set('Cookie', cookie).expect(200);
    });

    it('ends the session on DELETE: the old cookie opens nothing', async () => {
      const cookie = await login('k-one');
      const response = await request(server).delete('/api/session').set('Cookie', cookie).expect(204);
      expect((response.headers['set-cookie'] as unknown as string[])[0]).toBe(
        `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`,
      );
      await request(server).get('/api/modes').set('Cookie', cookie).expect(401);
    });

    it('opens nothing with a made-up cookie', async () => {
      await request(server)
        .get('/api/modes')
        .set('Cookie', `${SESSION_COOKIE}=${'A'.repeat(43)}`)
        .expect(401);
    });
  });

  describe('behind a PUBLIC_URL on https', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ API_KEY: 'k-one', PUBLIC_URL: 'https://images.example.com' });
    });
    afterAll(() => t.close());

    it('marks the cookie Secure', async () => {
      const server = t.app.getHttpServer() as Server;
      const response = await request(server).post('/api/session').send({ key: 'k-one' }).expect(200);
      expect((response.headers['set-cookie'] as unknown as string[])[0]).toMatch(
        /; HttpOnly; SameSite=Strict; Secure$/,
      );
    });
  });

  describe('without keys', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({});
    });
    afterAll(() => t.close());

    it('says no key is needed, and a login sets no cookie', async () => {
      const server = t.app.getHttpServer() as Server;
      const state = await request(server).get('/api/session').expect(200);
      expect(state.body).toEqual({ auth_required: false, authenticated: true, admin: true });
      const response = await request(server).post('/api/session').send({ key: 'anything' }).expect(200);
      expect(response.body).toEqual({ auth_required: false, admin: true });
      expect(response.headers['set-cookie']).toBeUndefined();
    });
  });
});
