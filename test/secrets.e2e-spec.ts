import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

const KEY = 'e2e-secret-plain-key';
const ADMIN_KEY = 'e2e-secret-admin-key';
const QUERY_SECRET = 'e2e-secret-in-a-query';
const COOKIE_SECRET = 'e2e-secret-in-a-cookie';

/** No secret leaves the gateway: not into its log, not into its model host's environment, not out of /ready. */
describe('secrets', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway(
      { MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0', API_KEY: KEY, ADMIN_API_KEY: ADMIN_KEY },
      { waitFor: '/health' },
    );
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
  });

  it('logs no key sent in a query string or a cookie, on a served request or a refused one', async () => {
    const before = gateway.logs().length;
    const paths = [
      `/api/modes?api_key=${QUERY_SECRET}&limit=1`,
      `/api/jobs?limit=1&token=${QUERY_SECRET}`,
      `/no/such/route?X-API-Key=${QUERY_SECRET}`,
    ];
    for (const path of paths) {
      for (const headers of [
        { 'X-API-Key': KEY, Cookie: `session=${COOKIE_SECRET}` },
        { Cookie: `k=${COOKIE_SECRET}` },
      ])
        await fetch(`${gateway.url}${path}`, { headers });
    }
    // The last request's completion line is the last line these requests write.
    await gateway.logged(
      /"url":"\/no\/such\/route\?X-API-Key=\[redacted\]".*\n(.|\n)*"url":"\/no\/such\/route\?X-API-Key=\[redacted\]"/,
      before,
    );
    const log = gateway.logs().slice(before);
    expect(log).toContain('"url":"/api/modes?api_key=[redacted]&limit=1"');
    expect(log).not.toContain(QUERY_SECRET);
    expect(log).not.toContain(COOKIE_SECRET);
    expect(log).not.toContain(KEY);
  });

  it('starts the model host with an environment that holds neither key', () => {
    const pid = /model host started \(pid (\d+)\)/.exec(gateway.logs())?.[1];
    expect(pid).toBeDefined();
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    expect(environ.some((entry) => entry.startsWith('HF_HUB_OFFLINE='))).toBe(true);
    expect(environ.filter((entry) => /^(ADMIN_)?API_KEY=/.test(entry))).toEqual([]);
    expect(environ.join('\n')).not.toContain(KEY);
    expect(environ.join('\n')).not.toContain(ADMIN_KEY);
  });
});

describe('a failed start on /ready', () => {
  let gateway: Gateway | undefined;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'e2e-secrets-'));
    const modes = readFileSync(join(demoDir(), 'modes.yaml'), 'utf8').replace(
      'model: tiny-sdxl.safetensors',
      'model: missing/tiny-sdxl-gone.safetensors',
    );
    writeFileSync(join(dir, 'modes.yaml'), modes);
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('says what failed without an absolute path; the log keeps the full path', async () => {
    gateway = await startGateway({ MODES_FILE: join(dir, 'modes.yaml'), MODES_WATCH: '0' }, { waitFor: '/health' });
    const started = gateway;
    // The model host starts first (seconds on a busy machine); then the default mode's load fails.
    const message = await waitFor(
      async () => {
        const answer = await fetch(`${started.url}/ready`);
        expect(answer.status).toBe(503);
        const text = ((await answer.json()) as { message: string }).message;
        return text.includes('the start failed') ? text : undefined;
      },
      { what: '/ready to say the start failed', timeoutMs: 120_000, context: () => started.logs() },
    );
    expect(message).toContain('tiny-sdxl-gone.safetensors');
    expect(message).not.toContain(demoDir());
    expect(message).not.toMatch(/(^|[\s'"(:])\/[^\s/]+\//);
    expect(gateway.logs()).toContain(join(demoDir(), 'missing', 'tiny-sdxl-gone.safetensors'));
  });
});
