import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';

/** GET /metrics through the whole app: its access, its content type, and the HTTP counter's route labels. */
describe('GET /metrics', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp({ API_KEY: 'k' });
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it('needs a key while METRICS_PUBLIC is off, and answers the exposition text with one', async () => {
    await request(server).get('/metrics').expect(401);
    const response = await request(server).get('/metrics').set('X-API-Key', 'k').expect(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.text).toContain('# TYPE imagegen_jobs_total counter');
    // The default process metrics are on.
    expect(response.text).toContain('# TYPE process_cpu_seconds_total counter');
  });

  it('counts requests by route pattern and status, a 401 and an unknown path included', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    await request(server).get(`/api/jobs/${id}`).set('X-API-Key', 'k').expect(404);
    await request(server).get(`/api/jobs/${id}`).expect(401);
    await request(server).get('/no/such/path').set('X-API-Key', 'k').expect(404);
    const text = (await request(server).get('/metrics').set('X-API-Key', 'k').expect(200)).text;
    expect(text).toContain('imagegen_http_requests_total{method="GET",route="/api/jobs/:id",status="404"} 1');
    expect(text).toContain('imagegen_http_requests_total{method="GET",route="/api/jobs/:id",status="401"} 1');
    expect(text).toContain('imagegen_http_requests_total{method="GET",route="unmatched",status="404"} 1');
    expect(text).not.toContain(id);
  });
});

describe('GET /metrics with METRICS_PUBLIC=1', () => {
  it('answers without a key', async () => {
    const t = await createTestApp({ API_KEY: 'k', METRICS_PUBLIC: '1' });
    try {
      await request(t.app.getHttpServer() as Server)
        .get('/metrics')
        .expect(200);
    } finally {
      await t.close();
    }
  });
});
