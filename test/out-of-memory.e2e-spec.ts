import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface Vram {
  models: { name: string; bytes: number }[];
}

/**
 * The out-of-memory row of the README's error table, for real: the model host is told its device is big enough
 * for the tiny SD1.5 model but not for the (larger) tiny SDXL one, so a request for an SDXL mode cannot be
 * loaded even after evicting everything idle.
 *
 * The cap depends on how many bytes the two models take once loaded, which depends on the device and dtype
 * (float32 on the CPU the suite runs on, float16 on CUDA): it is computed from what the model host reports for
 * them (GET /api/vram, `bytes` of each loaded mode), measured on a first gateway without a cap.
 */
describe('a mode that does not fit the device', () => {
  let gateway: Gateway;
  let folder: string;

  async function loadedBytes(modesFile: string): Promise<{ sd15: number; sdxl: number }> {
    const measuring = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0' });
    try {
      const switched = await fetch(`${measuring.url}/api/modes/switch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode: 'sdxl-general' }),
      });
      expect(switched.status).toBe(200);
      const vram = await waitFor(
        async () => {
          const body = (await (await fetch(`${measuring.url}/api/vram`)).json()) as Vram;
          return body.models.some((model) => model.name === 'sdxl-general') && body;
        },
        { what: 'sdxl-general to be loaded next to sd15-fast', context: measuring.logs },
      );
      const bytesOf = (name: string): number => {
        const model = vram.models.find((entry) => entry.name === name);
        if (!model) throw new Error(`${name} is not loaded: ${JSON.stringify(vram)}`);
        return model.bytes;
      };
      return { sd15: bytesOf('sd15-fast'), sdxl: bytesOf('sdxl-general') };
    } finally {
      expect(await measuring.stop()).toBe(0);
    }
  }

  beforeAll(async () => {
    const modes = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as {
      modes: Record<string, Record<string, unknown>>;
    };
    // sd15-fast without its upscaler: just the checkpoint, so the cap below is about the two models alone.
    delete modes.modes['sd15-fast'].superres;
    folder = mkdtempSync(join(tmpdir(), 'e2e-oom-'));
    const modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, dump({ ...modes, default_mode: 'sd15-fast' }));
    const bytes = await loadedBytes(modesFile);
    // Room for SD1.5 alone, not for SDXL: the gap between them must be wide enough to put the cap in.
    expect(bytes.sdxl).toBeGreaterThan(bytes.sd15 * 1.2);
    const cap = Math.round((bytes.sd15 + bytes.sdxl) / 2);
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0', MEMORY_CAP_BYTES: String(cap) });
  }, 600_000);

  afterAll(async () => {
    await gateway?.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  async function generate(mode: string): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode, prompt: 'a beautiful landscape', seed: 3 }),
    });
  }

  it('answers 503 out of memory, and the mode that fits keeps working', async () => {
    const refused = await generate('sdxl-general');
    expect(refused.status).toBe(503);
    const body = (await refused.json()) as { message: string; statusCode: number };
    expect(body.statusCode).toBe(503);
    expect(body.message).toContain('out of memory');
    expect(JSON.stringify(body)).not.toMatch(/Traceback|at .*\.(js|ts):\d+/);

    const served = await generate('sd15-fast');
    expect(served.status).toBe(200);
    expect(served.headers.get('x-mode')).toBe('sd15-fast');
  });
});
