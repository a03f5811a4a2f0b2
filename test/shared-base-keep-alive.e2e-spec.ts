import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump, load } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface Status {
  vram: { models: { name: string }[] };
  memory_policy: { mode: string; resident: 'device' | 'ram' | null; expires_at: string | null }[];
}

interface ModesFile {
  modes: Record<string, Record<string, unknown>>;
}

/**
 * Keep-alive works on pipelines: two LoRA variants of one checkpoint share its base pipeline on the device, and
 * once both were used and both keep-alives ran out the base leaves (the first expiry leaves it to the other; the
 * last takes both keys, so the base goes too), and status says so.
 */
describe('keep-alive of a base pipeline shared by two LoRA variants', () => {
  let gateway: Gateway;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-shared-base-'));
    const demo = load(readFileSync(join(demoDir(), 'modes.yaml'), 'utf8')) as ModesFile;
    const general = demo.modes['sdxl-general'] ?? {};
    const portrait = demo.modes['sdxl-portrait'] ?? {};
    // sdxl-general stays the default mode, so it is loaded at start (and armed from that load).
    demo.modes = {
      'sdxl-general': { ...general, keep_alive: '1s' },
      'sdxl-portrait': { ...portrait, keep_alive: '1s' },
    };
    writeFileSync(join(folder, 'modes.yaml'), dump(demo));
    gateway = await startGateway({ MODES_FILE: join(folder, 'modes.yaml'), MODES_WATCH: '0' });
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  const status = async (): Promise<Status> =>
    (await (await fetch(`${gateway.url}/api/models/status`)).json()) as Status;

  it('takes the base off the device within a few seconds once both were used, and status says so', async () => {
    for (const mode of ['sdxl-portrait', 'sdxl-general']) {
      const response = await fetch(`${gateway.url}/generate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode, prompt: 'a lighthouse', num_inference_steps: 1, seed: 1 }),
      });
      expect(response.status).toBe(200);
    }
    const gone = await waitFor(
      async () => {
        const now = await status();
        return now.vram.models.length === 0 ? now : undefined;
      },
      { what: 'the shared base to leave the device', timeoutMs: 20_000, context: () => gateway.logs() },
    );
    for (const mode of ['sdxl-general', 'sdxl-portrait']) {
      expect(gone.memory_policy.find((policy) => policy.mode === mode)).toMatchObject({
        resident: null,
        expires_at: null,
      });
    }
    expect(gateway.logs()).toMatch(/unloaded .*sdxl-(portrait|general).*sdxl-(portrait|general).* \(keep-alive\)/);
  });
});
