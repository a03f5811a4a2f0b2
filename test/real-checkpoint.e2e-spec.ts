import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { ROOT, SIDECAR_PYTHON } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

// Writing the 2 GB file takes a minute or two the first time on a machine; later runs find it in the cache.
const MAKE_FILE_TIMEOUT_MS = 600_000;
// SD1.5's UNet, VAE and text encoder, 1,066,235,307 parameters, as fp32 on the CPU: 3.97 GiB.
const SD15_FP32_GIB = 3.97;

/** The full-size random SD1.5 single file from the factory, made once per machine (cache folder). */
function fullSizeSd15(): string {
  const printed = execFileSync(SIDECAR_PYTHON, ['-m', 'modelhost', 'make-full-size-sd15'], {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    encoding: 'utf8',
  });
  return printed.trim().split('\n').at(-1) ?? '';
}

describe('a real-sized SD1.5 checkpoint with no config folder, offline, through the gateway', () => {
  let gateway: Gateway;
  let work: string;
  let hubCache: string;

  beforeAll(async () => {
    const checkpoint = fullSizeSd15();
    work = mkdtempSync(join(tmpdir(), 'e2e-real-'));
    hubCache = join(work, 'hub-cache');
    mkdirSync(hubCache);
    // The spec's layout and file name, the weights a hard link to the cached file (no copy, no symlink to leave
    // the model root).
    const modelRoot = join(work, 'models');
    mkdirSync(join(modelRoot, 'sd15'), { recursive: true });
    linkSync(checkpoint, join(modelRoot, 'sd15', 'dreamshaper-lcm.safetensors'));
    // The spec's sd15-fast mode, line for line: no `config:`.
    const modes = {
      model_root: modelRoot,
      default_mode: 'sd15-fast',
      modes: {
        'sd15-fast': {
          model: 'sd15/dreamshaper-lcm.safetensors',
          default_size: '512x512',
          default_steps: 4,
          default_guidance: 1.0,
        },
      },
    };
    const modesFile = join(work, 'modes.yaml');
    writeFileSync(modesFile, dump(modes));
    gateway = await startGateway({
      MODES_FILE: modesFile,
      // An empty model-hub cache, and the hub off: nothing can come from there.
      HF_HOME: hubCache,
      HF_HUB_CACHE: hubCache,
      HF_HUB_OFFLINE: '1',
    });
  }, MAKE_FILE_TIMEOUT_MS);

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('loads the full-size weights and generates a PNG on the CPU', async () => {
    // The mode's 512x512 and 4 steps would cost minutes of CPU; the request asks for the cheapest image.
    const response = await fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse on a cliff', size: '64x64', num_inference_steps: 1, seed: 7 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mode')).toBe('sd15-fast');
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 64, height: 64 });

    const vram = (await (await fetch(`${gateway.url}/api/vram`)).json()) as {
      models: { name: string; vram_gb: number }[];
    };
    expect(vram.models).toHaveLength(1);
    expect(vram.models[0].name).toBe('sd15-fast');
    expect(vram.models[0].vram_gb).toBeCloseTo(SD15_FP32_GIB, 1);
  });

  it('generates with every sampler the server lists, on the same loaded weights', async () => {
    const document = (await (await fetch(`${gateway.url}/docs-json`)).json()) as {
      components: { schemas: { GenerateRequestDto: { properties: { scheduler: { enum: string[] } } } } };
    };
    const samplers = document.components.schemas.GenerateRequestDto.properties.scheduler.enum;
    expect(samplers).toEqual(expect.arrayContaining(['euler', 'euler_a', 'dpmpp_2m_karras', 'ddim', 'lcm', 'unipc']));
    const answers: [string, number, string | null][] = [];
    for (const scheduler of samplers) {
      const response = await fetch(`${gateway.url}/generate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt: 'a lighthouse', size: '64x64', num_inference_steps: 2, seed: 7, scheduler }),
      });
      const png = Buffer.from(await response.arrayBuffer());
      answers.push([scheduler, response.status, response.status === 200 ? JSON.stringify(pngSize(png)) : null]);
    }
    expect(answers).toEqual(samplers.map((name) => [name, 200, JSON.stringify({ width: 64, height: 64 })]));
    // Still the one resident copy: a sampler never reloads the model.
    const vram = (await (await fetch(`${gateway.url}/api/vram`)).json()) as { models: unknown[] };
    expect(vram.models).toHaveLength(1);
  });

  it('left the model-hub cache empty', () => {
    expect(readdirSync(hubCache)).toEqual([]);
  });
});
