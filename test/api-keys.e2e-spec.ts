import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { openEventStream } from './support/event-stream';
import { Gateway, startGateway } from './support/gateway-process';
import { submitJob } from './support/jobs';
import { waitFor } from './support/wait-for';

interface OpenApiDocument {
  paths: Record<string, Record<string, { security?: unknown[] }>>;
}

const KEY = 'e2e-key-1';
const OTHER_KEY = 'e2e-key-2';
const ADMIN_KEY = 'e2e-admin';
/** The probes, and the web page's login (it is how a browser gets in: a wrong key there is a 401 of its own). */
const OPEN = new Set(['GET /health', 'GET /ready', 'GET /api/session', 'POST /api/session', 'DELETE /api/session']);
const ADMIN = new Set(['POST /api/modes/reload', 'POST /api/modes/switch', 'POST /api/models/unload']);
const ALLOWED_ORIGIN = 'https://app.example.com';

/**
 * API keys on the real gateway and model host: every route of the OpenAPI document is walked, so a route added
 * later without thought is caught here, not by a stranger.
 */
describe('API keys', () => {
  let gateway: Gateway;
  let routes: { method: string; path: string }[];

  beforeAll(async () => {
    gateway = await startGateway(
      {
        MODES_FILE: join(demoDir(), 'modes.yaml'),
        MODES_WATCH: '0',
        API_KEY: `${KEY},${OTHER_KEY}`,
        ADMIN_API_KEY: ADMIN_KEY,
        CORS_ORIGINS: ALLOWED_ORIGIN,
      },
      // Keys are checked before anything reaches the model host: no model needs to be resident.
      { waitFor: '/health' },
    );
    const document = (await (
      await fetch(`${gateway.url}/docs-json`, { headers: { 'X-API-Key': KEY } })
    ).json()) as OpenApiDocument;
    routes = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => ({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, 'x') })),
    );
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
  });

  const call = (method: string, path: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${gateway.url}${path}`, { method, headers });

  it('documents the routes this test walks, the open ones and the admin ones among them', () => {
    const names = routes.map((r) => `${r.method} ${r.path}`);
    expect(names).toEqual(
      expect.arrayContaining([...OPEN, ...ADMIN, 'POST /generate', 'GET /api/modes', 'POST /v1/images/generations']),
    );
  });

  it('answers 401 with the JSON error body of its route on every route but the probes and the login without a key', async () => {
    for (const { method, path } of routes) {
      const response = await call(method, path);
      if (OPEN.has(`${method} ${path}`)) {
        // /ready may still say 503 (model loading): what matters is that it answers without a key.
        expect({ route: `${method} ${path}`, refused: [401, 403].includes(response.status) }).toEqual({
          route: `${method} ${path}`,
          refused: false,
        });
        continue;
      }
      expect({ route: `${method} ${path}`, status: response.status }).toEqual({
        route: `${method} ${path}`,
        status: 401,
      });
      const message = 'an API key is required: send "Authorization: Bearer <key>" or "X-API-Key: <key>"';
      // OpenAI's routes answer in OpenAI's error shape, the rest in ours.
      expect(await response.json()).toEqual(
        path.startsWith('/v1/')
          ? { error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }
          : { error: 'unauthorized', message, statusCode: 401 },
      );
    }
  });

  it('answers 401 to a wrong key on every closed route', async () => {
    for (const { method, path } of routes.filter((r) => !OPEN.has(`${r.method} ${r.path}`))) {
      const response = await call(method, path, { Authorization: `Bearer ${KEY}x` });
      expect({ route: `${method} ${path}`, status: response.status }).toEqual({
        route: `${method} ${path}`,
        status: 401,
      });
    }
  });

  it('lets both header forms through on every route that is not an admin one', async () => {
    for (const { method, path } of routes.filter((r) => !ADMIN.has(`${r.method} ${r.path}`))) {
      const forms: Record<string, string>[] = [{ Authorization: `Bearer ${KEY}` }, { 'X-API-Key': OTHER_KEY }];
      for (const headers of forms) {
        const response = await call(method, path, headers);
        // Past the key check: whatever the route answers without a body, it is not a refusal of the key.
        expect({ route: `${method} ${path}`, refused: [401, 403].includes(response.status) }).toEqual({
          route: `${method} ${path}`,
          refused: false,
        });
      }
    }
    const modes = await call('GET', '/api/modes', { 'X-API-Key': KEY });
    expect(modes.status).toBe(200);
  });

  it('answers 403 on the admin routes to an API key, and serves the admin key', async () => {
    for (const route of ADMIN) {
      const [method, path] = route.split(' ') as [string, string];
      const refused = await call(method, path, { 'X-API-Key': KEY });
      expect({ route, status: refused.status }).toEqual({ route, status: 403 });
      expect(await refused.json()).toEqual({
        error: 'forbidden',
        message: 'this route needs an admin key (ADMIN_API_KEY)',
        statusCode: 403,
      });
    }
    const reload = await call('POST', '/api/modes/reload', { Authorization: `Bearer ${ADMIN_KEY}` });
    expect(reload.status).toBe(200);
    const switched = await fetch(`${gateway.url}/api/modes/switch`, {
      method: 'POST',
      headers: { 'X-API-Key': ADMIN_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode: 'no-such-mode' }),
    });
    expect(switched.status).toBe(404);
  });

  it("lets a plain key neither list nor cancel an admin's queued unload (403); the admin can", async () => {
    type Listed = { jobs: { id: string; kind: string; state: string }[] };
    const json = { 'Content-Type': 'application/json' };
    // A long generation keeps the host busy, so the unload waits in the queue behind it.
    const long = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { ...json, 'X-API-Key': KEY },
      body: JSON.stringify({ prompt: 'busy', num_inference_steps: 1000, size: '64x64' }),
    });
    expect(long.status).toBe(202);
    const busy = ((await long.json()) as { id: string }).id;
    const jobs = async (key: string): Promise<Listed['jobs']> =>
      ((await (await call('GET', '/api/jobs', { 'X-API-Key': key })).json()) as Listed).jobs;
    await waitFor(async () => (await jobs(KEY)).some((job) => job.id === busy && job.state === 'running'), {
      what: 'the long generation to run',
      context: () => gateway.logs(),
    });
    // Custom jobs queued before (a reload's pin sync, say) are not the unload.
    const before = new Set((await jobs(ADMIN_KEY)).map((job) => job.id));
    const unloaded = fetch(`${gateway.url}/api/models/unload`, {
      method: 'POST',
      headers: { ...json, 'X-API-Key': ADMIN_KEY },
      body: JSON.stringify({ all: true }),
    });
    const unload = await waitFor(
      async () =>
        (await jobs(ADMIN_KEY)).find((job) => job.kind === 'custom' && job.state === 'queued' && !before.has(job.id)),
      { what: 'the unload to be queued', context: () => gateway.logs() },
    );

    expect((await jobs(KEY)).map((job) => job.id)).not.toContain(unload.id);
    expect((await jobs(OTHER_KEY)).map((job) => job.id)).not.toContain(busy);
    expect((await call('DELETE', `/api/jobs/${unload.id}`, { 'X-API-Key': KEY })).status).toBe(403);
    expect((await call('DELETE', `/api/jobs/${busy}`, { 'X-API-Key': OTHER_KEY })).status).toBe(403);
    const cancelled = await call('DELETE', `/api/jobs/${unload.id}`, { 'X-API-Key': ADMIN_KEY });
    expect(cancelled.status).toBe(200);
    expect((await (await unloaded).json()) as object).toMatchObject({ error: 'cancelled' });
    expect((await call('DELETE', `/api/jobs/${busy}`, { 'X-API-Key': KEY })).status).toBe(200);
    // Ended on the model host too, so no long generation outlives the test (and holds up the gateway's stop).
    await waitFor(async () => (await jobs(KEY)).some((job) => job.id === busy && job.state === 'cancelled'), {
      what: 'the long generation to end cancelled',
      context: () => gateway.logs(),
    });
  });

  it("lets a plain key hear only its own jobs on GET /api/events; an admin key hears every job's", async () => {
    const listen = (key: string) => openEventStream(`${gateway.url}/api/events?types=job.`, { 'X-API-Key': key });
    const [plain, admin] = await Promise.all([listen(KEY), listen(ADMIN_KEY)]);
    try {
      const body = { prompt: 'mine or yours', num_inference_steps: 1, size: '64x64' };
      const own = await submitJob(gateway.url, body, { 'X-API-Key': KEY });
      const other = await submitJob(gateway.url, body, { 'X-API-Key': OTHER_KEY });
      await admin.next((event) => event.type === 'job.completed' && event.data.id === other);
      // Each stream is sent in the bus's order: once this key's later job is heard, the other key's would have been.
      const later = await submitJob(gateway.url, body, { 'X-API-Key': KEY });
      await plain.next((event) => event.type === 'job.completed' && event.data.id === later);
      const heard = (stream: typeof plain): unknown[] => [...new Set(stream.events.map((event) => event.data.id))];
      expect(heard(plain)).toEqual([own, later]);
      expect(heard(admin)).toEqual(expect.arrayContaining([own, other]));
    } finally {
      plain.close();
      admin.close();
    }
  });

  it('keeps the OpenAPI document and Swagger UI behind the key', async () => {
    for (const path of ['/docs', '/docs-json', '/docs-yaml']) {
      expect({ path, status: (await call('GET', path)).status }).toEqual({ path, status: 401 });
    }
    expect((await call('GET', '/docs-yaml', { Authorization: `Bearer ${KEY}` })).status).toBe(200);
  });

  it('answers a CORS preflight from a listed origin only', async () => {
    const preflight = (origin: string): Promise<Response> =>
      call('OPTIONS', '/api/modes', {
        Origin: origin,
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'x-api-key',
      });
    const allowed = await preflight(ALLOWED_ORIGIN);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-api-key');
    const other = await preflight('https://elsewhere.example.com');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
