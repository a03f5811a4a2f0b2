import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir, ROOT } from './support/demo-models';
import { E2E_ENV, Gateway, GATEWAY_MAIN, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface LogLine {
  level: number;
  msg: string;
  context?: string;
  request_id?: string;
  source?: string;
  req?: { method?: string; url?: string; headers?: Record<string, string> };
  res?: { statusCode?: number };
  job_id?: string;
  kind?: string;
  mode?: string;
  switch_source?: string | null;
}

interface Job {
  id: string;
  state: string;
}

/** The gateway's log on a pipe (not a terminal): one JSON object per line, request ids on a request's lines. */
describe('structured logs', () => {
  let gateway: Gateway;
  let folder: string;

  beforeAll(async () => {
    // The demo modes, with a keep-alive short enough to see one expire.
    folder = mkdtempSync(join(tmpdir(), 'e2e-logging-'));
    const modes = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as {
      modes: Record<string, Record<string, unknown>>;
    };
    modes.modes['sd15-fast'].keep_alive = '1s';
    writeFileSync(join(folder, 'modes.yaml'), dump(modes));
    gateway = await startGateway({ MODES_FILE: join(folder, 'modes.yaml'), MODES_WATCH: '0', API_KEY: 'log-key' });
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  /** The whole lines so far: a read of the pipe can stop inside a line, whose rest is still to come. */
  const lines = (): LogLine[] =>
    gateway
      .logs()
      .split('\n')
      .slice(0, -1)
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as LogLine);

  /** The completion line is written as the response ends, and reaches us through a pipe: wait for it, bounded. */
  async function completionOf(id: string): Promise<LogLine | undefined> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = lines().find((line) => line.request_id === id && line.msg === 'request completed');
      if (found || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('writes every line as JSON, with the model host lines under their own tag', () => {
    const all = lines();
    expect(all.some((line) => line.msg.startsWith('gateway listening on http://'))).toBe(true);
    const modelHost = all.filter((line) => line.source === 'model-host');
    expect(modelHost.length).toBeGreaterThan(0);
    expect(modelHost.some((line) => line.msg.includes('serving on'))).toBe(true);
  });

  it('says a handful of lines before the URL at the default level, none of them Nest route or module chatter', () => {
    const all = lines();
    const listening = all.findIndex((line) => line.msg.startsWith('gateway listening on http://'));
    expect(listening).toBeGreaterThan(0);
    expect(listening).toBeLessThanOrEqual(10);
    const chatter = all.filter((line) =>
      ['RoutesResolver', 'RouterExplorer', 'InstanceLoader'].includes(line.context ?? ''),
    );
    expect(chatter).toEqual([]);
  });

  it("puts the request's id on each of its lines, Nest's own included, and never the key", async () => {
    const response = await fetch(`${gateway.url}/api/modes/reload`, {
      method: 'POST',
      headers: { 'X-Request-Id': 'e2e-log-1', Authorization: 'Bearer log-key' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('e2e-log-1');

    const completed = await completionOf('e2e-log-1');
    // The modes service's own line, written while the request was served...
    const mine = lines().filter((line) => line.request_id === 'e2e-log-1');
    expect(mine.some((line) => line.context === 'ModesService' && line.msg.includes('reloaded (api)'))).toBe(true);
    // ...and the finished request's line.
    expect(completed?.res?.statusCode).toBe(200);
    // Method, URL, status, time and the id: no headers (they carry keys and cookies, and bury the line).
    expect(completed?.req).toEqual({ method: 'POST', url: '/api/modes/reload' });
    expect(completed).toHaveProperty('responseTime');
    expect(gateway.logs()).not.toContain('log-key');
  });

  it('writes one line per finished job: its mode, queue wait, switch time and source, generation time, outcome', async () => {
    const headers = { 'Content-Type': 'application/json', 'X-API-Key': 'log-key' };
    const submit = async (mode: string): Promise<Job> => {
      const response = await fetch(`${gateway.url}/api/jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ mode, prompt: 'a lighthouse', num_inference_steps: 1 }),
      });
      expect(response.status).toBe(202);
      return (await response.json()) as Job;
    };
    const lineOf = (id: string): Promise<LogLine> =>
      waitFor(() => lines().find((line) => line.msg === 'job finished' && line.job_id === id), {
        what: `the finished line of job ${id}`,
        context: gateway.logs,
      });

    // The default mode is active: no switch. Its LoRA variant shares the resident base: a shared-base switch.
    const plain = await lineOf((await submit('sdxl-general')).id);
    const switched = await lineOf((await submit('sdxl-portrait')).id);
    expect(plain).toMatchObject({
      level: 30,
      context: 'Jobs',
      kind: 'generation',
      mode: 'sdxl-general',
      outcome: 'completed',
      queue_ms: expect.any(Number) as number,
      switch_ms: null,
      switch_source: null,
      generate_ms: expect.any(Number) as number,
      error: null,
    });
    expect(switched).toMatchObject({
      mode: 'sdxl-portrait',
      outcome: 'completed',
      switch_ms: expect.any(Number) as number,
      switch_source: 'shared-base',
      switch_from: 'sdxl-general',
      generate_ms: expect.any(Number) as number,
    });
    // A job outlives the request that queued it: its line carries the job's id, not a request's.
    expect(plain.request_id).toBeUndefined();
    // One line per job. The default mode's load at start is the worker's bring-up, not a job: no line for it.
    const finished = lines().filter((line) => line.msg === 'job finished');
    expect(new Set(finished.map((line) => line.job_id)).size).toBe(finished.length);
    expect(finished.map((line) => [line.kind, line.mode, line.switch_source])).toEqual([
      ['generation', 'sdxl-general', null],
      ['generation', 'sdxl-portrait', 'shared-base'],
    ]);
  });

  it('logs the answered reads of polled paths at debug (not at the default info), and their refusals', async () => {
    const get = (path: string, id: string, key = 'log-key'): Promise<Response> =>
      fetch(`${gateway.url}${path}`, { headers: { 'X-Request-Id': id, 'X-API-Key': key } });
    expect((await get('/api/models/status', 'e2e-poll-status')).status).toBe(200);
    expect((await get('/api/vram', 'e2e-poll-vram')).status).toBe(200);
    expect((await get('/metrics', 'e2e-poll-metrics')).status).toBe(200);
    expect((await get('/api/vram', 'e2e-poll-refused', 'wrong-key')).status).toBe(401);
    // Lines are written in the order requests end: once a later request's line is here, theirs would be too.
    expect((await get('/api/modes', 'e2e-poll-after')).status).toBe(200);
    expect((await completionOf('e2e-poll-after'))?.res?.statusCode).toBe(200);
    const ids = new Set(lines().map((line) => line.request_id));
    expect(['e2e-poll-status', 'e2e-poll-vram', 'e2e-poll-metrics'].filter((id) => ids.has(id))).toEqual([]);
    expect(lines().find((line) => line.request_id === 'e2e-poll-refused')).toMatchObject({
      level: 40,
      msg: 'request completed',
      res: { statusCode: 401 },
    });
  });

  it('makes an id when the request brings none', async () => {
    const response = await fetch(`${gateway.url}/api/modes`, { headers: { 'X-API-Key': 'log-key' } });
    expect(response.status).toBe(200);
    const id = response.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await completionOf(id))?.res?.statusCode).toBe(200);
  });

  it("writes a keep-alive's unload with no request id, though a request's job armed it", async () => {
    const response = await fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-API-Key': 'log-key', 'X-Request-Id': 'e2e-keep-alive' },
      body: JSON.stringify({ mode: 'sd15-fast', prompt: 'a lighthouse', num_inference_steps: 1 }),
    });
    expect(response.status).toBe(200);
    const unloaded = await waitFor(
      () => lines().find((line) => line.msg.startsWith('unloaded sd15-fast-') && line.msg.includes('(keep-alive)')),
      { what: "sd15-fast's keep-alive to unload it", context: gateway.logs },
    );
    expect(unloaded.request_id).toBeUndefined();
  });
});

describe('logs at LOG_LEVEL=warn', () => {
  it("still shows the model host's warnings, as warnings, and no info line", async () => {
    // Spawned by hand: at warn the start line that names the URL (info) is not written, and the harness reads the port
    // from it. MODELHOST_BENCH_LOAD_DELAY_MS makes the model host log a WARNING at start (server.py).
    const child = spawn(process.execPath, [GATEWAY_MAIN], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...E2E_ENV,
        PORT: '0',
        MODES_FILE: join(demoDir(), 'modes.yaml'),
        MODES_WATCH: '0',
        LOG_LEVEL: 'warn',
        MODELHOST_BENCH_LOAD_DELAY_MS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      await waitFor(() => output.includes('BENCHMARK ONLY'), {
        what: "the model host's warning",
        timeoutMs: 120_000,
        context: () => output,
      });
      const all = output
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as LogLine);
      expect(all.find((line) => line.msg.includes('BENCHMARK ONLY'))).toMatchObject({
        level: 40,
        source: 'model-host',
      });
      expect(all.filter((line) => line.level < 40)).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
