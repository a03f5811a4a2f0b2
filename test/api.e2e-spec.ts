import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { load } from 'js-yaml';

import { demoDir, ROOT, SIDECAR_PYTHON } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface DemoModes {
  default_mode: string;
  modes: Record<string, { default_size: string }>;
}

function sizeOf(spec: string): { width: number; height: number } {
  const [width, height] = spec.split('x').map(Number);
  return { width, height };
}

const VRAM_KEYS = ['device', 'total_gb', 'used_gb', 'available_gb', 'usage_percent', 'models_loaded', 'models'];
const MODEL_KEYS = ['name', 'model_path', 'vram_gb', 'loras'];

/** Every key the spec shows is there with its JSON type; keys we add come after them. */
function expectVramShape(vram: Record<string, unknown>): void {
  expect(Object.keys(vram).slice(0, VRAM_KEYS.length)).toEqual(VRAM_KEYS);
  expect(typeof vram.device).toBe('string');
  for (const key of ['total_gb', 'used_gb', 'available_gb', 'usage_percent', 'models_loaded']) {
    expect(typeof vram[key]).toBe('number');
  }
  for (const key of ['total_gb', 'used_gb', 'available_gb']) {
    expect(Math.round((vram[key] as number) * 100) / 100).toBe(vram[key]);
  }
  expect(Math.round((vram.usage_percent as number) * 10) / 10).toBe(vram.usage_percent);
  const models = vram.models as Record<string, unknown>[];
  expect(Array.isArray(models)).toBe(true);
  expect(vram.models_loaded).toBe(models.length);
  for (const model of models) {
    expect(Object.keys(model).slice(0, MODEL_KEYS.length)).toEqual(MODEL_KEYS);
    expect(typeof model.name).toBe('string');
    expect(model.model_path).toMatch(/^\/.*\.safetensors$/);
    expect(typeof model.vram_gb).toBe('number');
    expect(Array.isArray(model.loras)).toBe(true);
  }
}

describe('the management API on the real model host and the demo models', () => {
  let gateway: Gateway;
  let modes: DemoModes;

  beforeAll(async () => {
    const modesFile = join(demoDir(), 'modes.yaml');
    modes = load(readFileSync(modesFile, 'utf8')) as DemoModes;
    // QUEUE_MAX=3 for the burst below.
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0', QUEUE_MAX: '3' });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  async function post(path: string, body: unknown): Promise<Response> {
    return fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  async function getJson(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${gateway.url}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Until nothing is queued or running: a switch is answered before it is done. */
  /**
   * Waits until `mode` is current, nothing is queued and the memory figures list it: the mode is current once its
   * load is recorded, and the figures (`as_of`) are read from the model host after that, a moment later.
   */
  async function settled(mode: string): Promise<Record<string, unknown>> {
    return waitFor(
      async () => {
        const { body } = await getJson('/api/models/status');
        const listed = (body.vram as { models?: { name: string }[] } | undefined)?.models ?? [];
        return (
          body.current_mode === mode && body.queue_size === 0 && listed.some((model) => model.name === mode) && body
        );
      },
      { what: `mode '${mode}' to become current and listed, with nothing queued`, context: () => gateway.logs() },
    );
  }

  it('GET /api/models/status answers the spec keys, key for key', async () => {
    const { status, body } = await getJson('/api/models/status');
    expect(status).toBe(200);
    expect(Object.keys(body).slice(0, 3)).toEqual(['current_mode', 'queue_size', 'vram']);
    expect(body.current_mode).toBe(modes.default_mode);
    expect(body.queue_size).toBe(0);
    const vram = body.vram as Record<string, unknown>;
    expectVramShape(vram);
    const models = vram.models as { name: string; model_path: string }[];
    expect(models.map((model) => model.name)).toContain(modes.default_mode);
    expect(models.find((model) => model.name === modes.default_mode)?.model_path).toBe(
      join(demoDir(), 'tiny-sdxl.safetensors'),
    );
  });

  it('GET /api/vram answers the vram object, with when its figures were read', async () => {
    const before = Date.now();
    const { status, body } = await getJson('/api/vram');
    expect(status).toBe(200);
    expectVramShape(body);
    expect(body.device_type).toBe('cpu');
    expect(body.total_gb as number).toBeGreaterThan(0);
    // The spec's keys, then ours: the kind of device, when the figures were read, and each model host.
    expect(Object.keys(body).slice(-3)).toEqual(['device_type', 'as_of', 'hosts']);
    expect(new Date(body.as_of as string).toISOString()).toBe(body.as_of);
    // Read after the last load or job, before this request: answered from state, not asked for it.
    expect(Date.parse(body.as_of as string)).toBeLessThanOrEqual(before);
  });

  it('POST /api/modes/switch answers the spec keys, then switches', async () => {
    const response = await post('/api/modes/switch', { mode: 'sd15-fast' });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    // The spec's keys, then ours: a switch is a job, its id and Location lead to its record.
    expect(Object.keys(body)).toEqual(['status', 'from_mode', 'to_mode', 'message', 'id']);
    expect(response.headers.get('location')).toBe(`/api/jobs/${String(body.id)}`);
    expect(body).toEqual({
      status: 'queued',
      from_mode: modes.default_mode,
      to_mode: 'sd15-fast',
      message: 'Mode switch queued. Will switch after 0 pending jobs.',
      id: expect.any(String) as unknown,
    });
    const status = await settled('sd15-fast');
    const names = ((status.vram as { models: { name: string }[] }).models ?? []).map((model) => model.name);
    expect(names).toContain('sd15-fast');
    // A request that names no mode runs in the mode switched to.
    const image = await post('/generate', { prompt: 'after the switch' });
    expect(image.status).toBe(200);
    expect(image.headers.get('x-mode')).toBe('sd15-fast');
    await image.arrayBuffer();
  });

  it('counts the jobs ahead of a switch, the running one included', async () => {
    const long = post('/generate', { mode: 'sd15-fast', prompt: 'long', num_inference_steps: 30, size: '192x192' });
    const queued = post('/generate', { mode: 'sd15-fast', prompt: 'queued' });
    // Until both are in: one running, one waiting.
    await waitFor(async () => (await getJson('/api/models/status')).body.queue_size === 1, {
      what: 'the second request to queue behind the 30-step one',
      intervalMs: 20,
      context: () => gateway.logs(),
    });
    const response = await post('/api/modes/switch', { mode: modes.default_mode });
    expect(await response.json()).toEqual({
      status: 'queued',
      from_mode: 'sd15-fast',
      to_mode: modes.default_mode,
      message: 'Mode switch queued. Will switch after 2 pending jobs.',
      id: expect.any(String) as unknown,
    });
    for (const reply of await Promise.all([long, queued])) {
      expect(reply.status).toBe(200);
      expect(reply.headers.get('x-mode')).toBe('sd15-fast');
      await reply.arrayBuffer();
    }
    await settled(modes.default_mode);
  });

  it.each([
    [{ mode: 'xyz' }, 404, "Mode 'xyz' not found (modes: sdxl-general, sdxl-portrait, sd15-fast, sd15-detail)"],
    [{}, 400, 'mode: is required'],
    [{ mode: 7 }, 400, 'mode: must be a string'],
    [{ mode: 'sd15-fast', when: 'now' }, 400, 'when: unknown field'],
  ])('POST /api/modes/switch %j answers %i', async (body, status, message) => {
    const response = await post('/api/modes/switch', body);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { message: string }).message).toBe(message);
  });

  it('serves alternating requests for two modes, each with its X-Mode and size', async () => {
    const sequence = ['sd15-fast', 'sdxl-portrait', 'sd15-fast', 'sdxl-portrait', 'sd15-fast', 'sdxl-portrait'];
    // Sent three at a time (one runs, two wait: within QUEUE_MAX): the queue keeps their order and switches.
    for (let start = 0; start < sequence.length; start += 3) {
      const batch = sequence.slice(start, start + 3);
      const replies = await Promise.all(
        batch.map((mode, i) => post('/generate', { mode, prompt: `alt ${start + i}` })),
      );
      for (const [i, reply] of replies.entries()) {
        expect(reply.status).toBe(200);
        expect(reply.headers.get('x-mode')).toBe(batch[i]);
        const png = Buffer.from(await reply.arrayBuffer());
        expect(pngSize(png)).toEqual(sizeOf(modes.modes[batch[i]].default_size));
      }
    }
  });

  it('answers a burst of 16 with QUEUE_MAX=3 with 200s and 429s only', async () => {
    const replies = await Promise.all(
      Array.from({ length: 16 }, (_, i) => post('/generate', { prompt: `burst ${i}`, num_inference_steps: 8 })),
    );
    const statuses = replies.map((reply) => reply.status);
    for (const reply of replies) await reply.arrayBuffer();
    expect(statuses.filter((status) => status !== 200 && status !== 429)).toEqual([]);
    expect(statuses).toContain(200);
    expect(statuses).toContain(429);
    const refused = replies.find((reply) => reply.status === 429);
    expect(refused?.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('serves the OpenAPI document at /docs-json and Swagger UI at /docs', async () => {
    const { status, body } = await getJson('/docs-json');
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    expect(Object.keys(body.paths as object).sort()).toEqual(
      [
        '/api/events',
        '/api/models',
        '/api/jobs',
        '/api/jobs/{id}',
        '/api/jobs/{id}/events',
        '/api/jobs/{id}/image',
        '/api/models/status',
        '/api/models/unload',
        '/api/modes',
        '/api/modes/reload',
        '/api/modes/switch',
        '/api/session',
        '/api/vram',
        '/generate',
        '/health',
        '/metrics',
        '/ready',
        '/v1/images/generations',
        '/v1/models',
        '/v1/models/{model}',
      ].sort(),
    );
    const ui = await fetch(`${gateway.url}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('Swagger UI');
  });

  it("runs the spec's Python Example 1 unchanged but for the port", async () => {
    const { stdout } = await promisify(execFile)(SIDECAR_PYTHON, [join(ROOT, 'test', 'fixtures', 'example1.py')], {
      cwd: ROOT,
      env: { ...process.env, EXAMPLE_PORT: new URL(gateway.url).port },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/^Current mode: sd15-fast\nVRAM used: \d+(\.\d+)? GB\n$/);
  });
});
