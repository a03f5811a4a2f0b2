import { request as httpRequest } from 'node:http';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>;
}

interface Answer {
  status: number;
  body: string;
}

const ALLOWED = 'images.lan';
const FOREIGN = 'rebind.attacker.example';
/** The demo's default mode: loaded at start, so the generation below waits for no switch. */
const MODE = 'sdxl-general';

/**
 * The Host check (DNS rebinding) on the real gateway: a page whose domain rebinds to 127.0.0.1 sends its own name in
 * Host, so every route refuses it, while loopback names and ALLOWED_HOSTS are served and the /v1 image URLs are built
 * on the Host that passed. fetch() may not set Host, so node:http sends these requests.
 */
describe('the Host check', () => {
  let gateway: Gateway;
  let port: number;
  let routes: { method: string; path: string }[];

  const send = (method: string, path: string, host: string, body?: object): Promise<Answer> =>
    new Promise((resolveAnswer, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          headers: {
            Host: host,
            Origin: `http://${host}`,
            ...(payload !== undefined && { 'Content-Type': 'application/json' }),
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  beforeAll(async () => {
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      ALLOWED_HOSTS: ALLOWED,
    });
    port = Number(new URL(gateway.url).port);
    const document = (await (await fetch(`${gateway.url}/docs-json`)).json()) as OpenApiDocument;
    routes = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => ({ method: method.toUpperCase(), path: path.replace(/\{[^}]+\}/g, 'x') })),
    );
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
  });

  it('answers 403 naming ALLOWED_HOSTS to a foreign Host on every route, Swagger and unknown paths included', async () => {
    expect(routes.length).toBeGreaterThan(15);
    const paths = [...routes, { method: 'GET', path: '/docs' }, { method: 'GET', path: '/docs-json' }];
    for (const { method, path } of [...paths, { method: 'GET', path: '/no/such/path' }]) {
      const answer = await send(method, path, `${FOREIGN}:${port}`, method === 'POST' ? {} : undefined);
      expect({ method, path, status: answer.status }).toEqual({ method, path, status: 403 });
      expect(answer.body).toContain('ALLOWED_HOSTS');
    }
    // The switch a rebinding page would post: refused, so nothing was queued.
    const jobs = (await (await fetch(`${gateway.url}/api/jobs`)).json()) as { jobs: { kind: string }[] };
    expect(jobs.jobs.filter((job) => job.kind === 'mode_switch')).toEqual([]);
  });

  it('serves the loopback names on any port and the names in ALLOWED_HOSTS', async () => {
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, '[::1]:1', 'LocalHost', `${ALLOWED}:${port}`]) {
      expect({ host, status: (await send('GET', '/api/models/status', host)).status }).toEqual({ host, status: 200 });
    }
  });

  it('builds the /v1 image URLs on the allowed Host the request came with', async () => {
    const answer = await send('POST', '/v1/images/generations', `${ALLOWED}:${port}`, {
      model: MODE,
      prompt: 'a lighthouse',
      size: '64x64',
      steps: 1,
      response_format: 'url',
    });
    expect(answer.status).toBe(200);
    const url = (JSON.parse(answer.body) as { data: { url: string }[] }).data[0]?.url ?? '';
    expect(url).toMatch(new RegExp(`^http://${ALLOWED}:${port}/api/jobs/[0-9a-f-]{36}/image$`));
    const image = await fetch(`${gateway.url}${new URL(url).pathname}`);
    expect(image.status).toBe(200);
    expect(pngSize(Buffer.from(await image.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });
});
