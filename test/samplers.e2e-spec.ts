import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

// Kept in step with apps/gateway/src/common/samplers.ts: a change there must show here.
const SCHEDULERS = [
  'default',
  'euler',
  'euler_a',
  'dpmpp_2m',
  'dpmpp_2m_karras',
  'dpmpp_2m_sde_karras',
  'dpmpp_sde_karras',
  'ddim',
  'pndm',
  'lcm',
  'unipc',
];

/** Modes on the one tiny SD1.5 checkpoint: LCM, its own sampler, A1111's "Clip skip: 2", v-prediction. */
function modesYaml(modelRoot: string): string {
  const sd15 = 'model: tiny-sd15.safetensors\n    config: tiny-sd15.config\n    default_size: "64x64"';
  return [
    `model_root: ${modelRoot}`,
    'default_mode: fast',
    'modes:',
    `  fast:\n    ${sd15}\n    default_steps: 2\n    default_guidance: 1.0\n    scheduler: lcm`,
    `  plain:\n    ${sd15}\n    default_steps: 2`,
    `  skip:\n    ${sd15}\n    default_steps: 2\n    clip_skip: 2`,
    `  vpred:\n    ${sd15}\n    default_steps: 2\n    prediction_type: v_prediction`,
    '',
  ].join('\n');
}

interface VramModel {
  key: string;
}

describe('samplers and clip skip through the real gateway and model host', () => {
  let gateway: Gateway;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-samplers-'));
    const modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, modesYaml(demoDir()));
    gateway = await startGateway({ MODES_FILE: modesFile });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  async function generate(body: Record<string, unknown>): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse at dusk', seed: 7, ...body }),
    });
  }

  async function residentKeys(): Promise<string[]> {
    const vram = (await (await fetch(`${gateway.url}/api/vram`)).json()) as { models: VramModel[] };
    return vram.models.map((model) => model.key);
  }

  /** Loads the gateway asked for, and pipelines the model host read from disk, so far. */
  function loads(): { switches: number; diskLoads: number } {
    const logs = gateway.logs();
    return {
      switches: logs.match(/switching mode:/g)?.length ?? 0,
      diskLoads: logs.match(/loaded \S+ \(sd15, disk,/g)?.length ?? 0,
    };
  }

  it('answers a PNG for every sampler name without loading anything again', async () => {
    // The model host's line for the start's load is relayed through the gateway's log, which can still be on its
    // way when /ready says 200: the count below starts from it.
    await gateway.logged(/loaded \S+ \(sd15, disk,/);
    const keys = await residentKeys();
    const before = loads();
    expect(keys).toHaveLength(1);
    expect(before).toEqual({ switches: 1, diskLoads: 1 });
    for (const scheduler of SCHEDULERS) {
      const response = await generate({ scheduler });
      expect([scheduler, response.status]).toEqual([scheduler, 200]);
      expect(response.headers.get('content-type')).toBe('image/png');
      expect(response.headers.get('x-mode')).toBe('fast');
      expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 64, height: 64 });
    }
    expect(await residentKeys()).toEqual(keys);
    expect(loads()).toEqual(before);
  });

  it('answers 400 naming the allowed values for an unknown sampler', async () => {
    const response = await generate({ scheduler: 'k_dpmpp_2m' });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: 'invalid_request',
      message: `scheduler: must be one of ${SCHEDULERS.join(', ')}`,
      statusCode: 400,
    });
  });

  it("shows each mode's effective sampler and its clip skip in GET /api/modes", async () => {
    const listing = (await (await fetch(`${gateway.url}/api/modes`)).json()) as {
      modes: Record<string, { scheduler: string; clip_skip?: number; prediction_type?: string }>;
    };
    expect(listing.modes.fast).toMatchObject({ scheduler: 'lcm' });
    expect(listing.modes.plain).toMatchObject({ scheduler: 'default' });
    expect(listing.modes.plain.clip_skip).toBeUndefined();
    expect(listing.modes.skip).toMatchObject({ scheduler: 'default', clip_skip: 2 });
    expect(listing.modes.vpred).toMatchObject({ scheduler: 'default', prediction_type: 'v_prediction' });
  });

  it("runs a mode's clip skip: the same request gives another image than without it", async () => {
    const plain = await generate({ mode: 'plain' });
    const skipped = await generate({ mode: 'skip' });
    const again = await generate({ mode: 'skip' });
    expect([plain.status, skipped.status, again.status]).toEqual([200, 200, 200]);
    const [a, b, c] = await Promise.all([plain, skipped, again].map(async (r) => Buffer.from(await r.arrayBuffer())));
    expect(b.equals(c)).toBe(true);
    expect(a.equals(b)).toBe(false);
    // Both modes are the one checkpoint: the second only attached its key to the resident pipeline.
    expect(loads().diskLoads).toBe(1);
  });

  it('loads a prediction_type override as a key of its own on the resident pipeline', async () => {
    const plain = await generate({ mode: 'plain' });
    const vpred = await generate({ mode: 'vpred' });
    expect([plain.status, vpred.status]).toEqual([200, 200]);
    const [a, b] = await Promise.all([plain, vpred].map(async (r) => Buffer.from(await r.arrayBuffer())));
    expect(pngSize(b)).toEqual({ width: 64, height: 64 });
    expect(a.equals(b)).toBe(false);
    expect((await residentKeys()).filter((key) => key.startsWith('vpred-'))).toHaveLength(1);
    expect(loads().diskLoads).toBe(1);
  });
});
