import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';

/**
 * DESIGN §4's out-of-memory row, for real: the model host is told its device is big enough for the
 * tiny SD1.5 model but not for the (larger) tiny SDXL one, so a request for an SDXL mode cannot be
 * loaded even after evicting everything idle.
 */
describe('a mode that does not fit the device', () => {
  let gateway: Gateway;
  let folder: string;

  beforeAll(async () => {
    const demo = demoDir();
    const sd15Bytes = statSync(join(demo, 'tiny-sd15.safetensors')).size;
    const sdxlBytes = statSync(join(demo, 'tiny-sdxl.safetensors')).size;
    expect(sdxlBytes).toBeGreaterThan(sd15Bytes * 1.2);
    const modes = load(readFileSync(join(demo, 'modes.yaml'), 'utf8')) as {
      modes: Record<string, Record<string, unknown>>;
    };
    // sd15-fast without its upscaler: just the checkpoint, so the cap below is about the two models alone.
    delete modes.modes['sd15-fast'].superres;
    folder = mkdtempSync(join(tmpdir(), 'e2e-oom-'));
    const modesFile = join(folder, 'modes.yaml');
    writeFileSync(modesFile, dump({ ...modes, default_mode: 'sd15-fast' }));
    const cap = Math.round((sd15Bytes + sdxlBytes) / 2);
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0', MEMORY_CAP_BYTES: String(cap) });
  });

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
