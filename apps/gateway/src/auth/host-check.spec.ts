import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { ForbiddenError } from '../errors/domain.errors.js';
import { HostCheck, isLoopback } from './host-check.js';

describe('HostCheck', () => {
  const loopback = new HostCheck({ listenHost: '127.0.0.1', allowedHosts: ['images.lan', 'Gen.Example.'] });

  it('serves loopback names on any port, and the allowed names, case and trailing dot aside', () => {
    for (const host of ['localhost', 'localhost:4200', '127.0.0.1:1', '[::1]:4200', 'LOCALHOST', 'images.lan:80'])
      expect(loopback.allows(host)).toBe(true);
    expect(loopback.allows('gen.example')).toBe(true);
    expect(loopback.allows('GEN.example.:9')).toBe(true);
  });

  it('refuses any other Host, a malformed one and none, with a 403 naming ALLOWED_HOSTS', () => {
    for (const host of ['rebind.attacker.example:4801', 'localhost.attacker.example', '127.0.0.2', 'bad host/', ''])
      expect(loopback.allows(host)).toBe(false);
    expect(loopback.allows(undefined)).toBe(false);
    expect(() => loopback.check('evil.example:1')).toThrow(ForbiddenError);
    expect(() => loopback.check('evil.example:1')).toThrow(
      "this server does not answer to the Host 'evil.example': add the name to ALLOWED_HOSTS",
    );
  });

  it('serves any Host on a non-loopback address without ALLOWED_HOSTS, and says the Host is unchecked', () => {
    const open = new HostCheck({ listenHost: '0.0.0.0', allowedHosts: [] });
    expect(open.allows('anything.example')).toBe(true);
    expect(open.unchecked).toBe(true);
    expect(loopback.unchecked).toBe(false);
    const listed = new HostCheck({ listenHost: '0.0.0.0', allowedHosts: ['images.lan'] });
    expect(listed.allows('anything.example')).toBe(false);
    expect(listed.allows('images.lan')).toBe(true);
    expect(listed.allows('localhost:1')).toBe(true);
    expect(new HostCheck({ listenHost: '127.0.0.1', allowedHosts: ['*'] }).unchecked).toBe(true);
  });

  it('knows the loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopback(address)).toBe(true);
    for (const address of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1'])
      expect(isLoopback(address)).toBe(false);
  });
});

/** The check through the whole app: ahead of every route, the 404s and the preflights included. */
describe('the Host check in the app', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp({ ALLOWED_HOSTS: 'images.lan' });
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it('answers 403 to a foreign Host on every kind of route, before the body is read', async () => {
    for (const path of ['/health', '/api/models/status', '/no/such/route', '/v1/models']) {
      await request(server).get(path).set('Host', 'rebind.attacker.example:4801').expect(403);
    }
    const response = await request(server)
      .post('/api/modes/switch')
      .set('Host', 'rebind.attacker.example:4801')
      .set('Origin', 'http://rebind.attacker.example:4801')
      .send({ mode: 'plain' })
      .expect(403);
    expect(response.body).toEqual({
      error: 'forbidden',
      message:
        "this server does not answer to the Host 'rebind.attacker.example': add the name to ALLOWED_HOSTS " +
        '(comma-separated) to serve it (loopback names are always served)',
      statusCode: 403,
    });
    expect(t.modelHost.calls.filter((call) => call.includes('plain'))).toEqual([]);
  });

  it('serves loopback Hosts and ALLOWED_HOSTS', async () => {
    for (const host of ['localhost:1234', '127.0.0.1', '[::1]:80', 'images.lan:4200']) {
      await request(server).get('/api/models/status').set('Host', host).expect(200);
    }
  });
});
