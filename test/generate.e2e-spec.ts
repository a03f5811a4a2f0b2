import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { load } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

interface DemoModes {
  default_mode: string;
  modes: Record<string, { default_size: string }>;
}

function sizeOf(spec: string): { width: number; height: number } {
  const [width, height] = spec.split('x').map(Number);
  return { width, height };
}

describe('POST /generate on the real model host and the demo models', () => {
  let gateway: Gateway;
  let modes: DemoModes;

  beforeAll(async () => {
    const modesFile = join(demoDir(), 'modes.yaml');
    modes = load(readFileSync(modesFile, 'utf8')) as DemoModes;
    gateway = await startGateway({ MODES_FILE: modesFile });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  async function generate(body: unknown): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  it("answers the spec's first curl with a PNG of the default mode's size and the three headers", async () => {
    const response = await generate({ prompt: 'a beautiful landscape' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(response.headers.get('x-mode')).toBe(modes.default_mode);
    expect(response.headers.get('x-seed')).toMatch(/^\d+$/);
    expect(response.headers.get('x-superres')).toBe('false');
    const png = Buffer.from(await response.arrayBuffer());
    expect(pngSize(png)).toEqual(sizeOf(modes.modes[modes.default_mode].default_size));
  });

  it('gives the same bytes for the same seed and echoes it', async () => {
    const first = await generate({ prompt: 'a beautiful landscape', seed: 42 });
    const second = await generate({ prompt: 'a beautiful landscape', seed: 42 });
    const other = await generate({ prompt: 'a beautiful landscape', seed: 43 });
    expect(first.headers.get('x-seed')).toBe('42');
    expect(second.headers.get('x-seed')).toBe('42');
    const [a, b, c] = await Promise.all([first, second, other].map(async (r) => Buffer.from(await r.arrayBuffer())));
    // Exact on purpose: the same request twice to one server is one process, one pipeline, one code path, and a
    // seed that reproduces its image is the contract. (Images from different processes or code paths are
    // compared with a tolerance, never like this.)
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });

  it('switches to the mode a request names and uses its default size', async () => {
    for (const mode of ['sd15-fast', 'sdxl-portrait', modes.default_mode]) {
      const response = await generate({ mode, prompt: 'a portrait', seed: 1 });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-mode')).toBe(mode);
      expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual(sizeOf(modes.modes[mode].default_size));
    }
  });

  it('honours an explicit size', async () => {
    const response = await generate({ mode: 'sd15-fast', prompt: 'wide', size: '96x64', num_inference_steps: 2 });
    expect(response.status).toBe(200);
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 96, height: 64 });
  });

  it("answers 404 Mode 'xyz' not found for an unknown mode", async () => {
    const response = await generate({ mode: 'xyz', prompt: 'a cat' });
    expect(response.status).toBe(404);
    const body = (await response.json()) as { message: string };
    expect(body.message).toContain("Mode 'xyz' not found");
  });

  it.each([
    [{}, 'prompt'],
    [{ prompt: '' }, 'prompt'],
    [{ prompt: 'x', size: '64by64' }, 'size'],
    [{ prompt: 'x', size: '60x64' }, 'size'],
    [{ prompt: 'x', num_inference_steps: 0 }, 'num_inference_steps'],
    [{ prompt: 'x', guidance_scale: 'high' }, 'guidance_scale'],
    [{ prompt: 'x', seed: -1 }, 'seed'],
    [{ prompt: 'x', colour: 'red' }, 'colour'],
  ])('answers 400 naming the field for %j', async (body, field) => {
    const response = await generate(body);
    expect(response.status).toBe(400);
    const text = await response.text();
    expect(text).toContain(field);
    expect(text).not.toMatch(/at .*\.(js|ts):\d+/);
  });
});
