import { copyFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { parsePrometheusText, sampleSum } from './support/prometheus-text';
import { waitFor } from './support/wait-for';

interface VramModel {
  name: string;
  key: string;
  model_path: string;
  stale: boolean;
}

/**
 * No stale copies: a mode whose definition changed in modes.yaml while its pipeline is resident loads under a new key
 * on its next use, and its old pipeline is released (to the RAM tier when there is room, else freed) instead of
 * staying beside it.
 */
describe('a mode edited while it is resident', () => {
  let folder: string;
  let modesFile: string;
  let gateway: Gateway;

  function writeModes(model: string): void {
    const mode = { model, config: 'tiny-sd15.config', default_size: '64x64', default_steps: 2 };
    writeFileSync(modesFile, dump({ model_root: folder, default_mode: 'a', modes: { a: mode } }));
  }

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-stale-'));
    modesFile = join(folder, 'modes.yaml');
    for (const name of ['one', 'two']) {
      copyFileSync(join(demoDir(), 'tiny-sd15.safetensors'), join(folder, `${name}.safetensors`));
    }
    cpSync(join(demoDir(), 'tiny-sd15.config'), join(folder, 'tiny-sd15.config'), { recursive: true });
    writeModes('one.safetensors');
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0' });
  }, 300_000);

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  async function modelsOf(mode: string): Promise<VramModel[]> {
    const vram = (await (await fetch(`${gateway.url}/api/vram`)).json()) as { models: VramModel[] };
    return vram.models.filter((model) => model.name === mode);
  }

  it('lists one copy after the next job: the old pipeline is released, counted as a stale eviction', async () => {
    const [before] = await waitFor(
      async () => {
        const models = await modelsOf('a');
        return models.length === 1 && models;
      },
      { what: "mode a's first pipeline in /api/vram" },
    );
    expect(before?.model_path.endsWith('one.safetensors')).toBe(true);

    writeModes('two.safetensors');
    const reload = await fetch(`${gateway.url}/api/modes/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);
    const generated = await fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode: 'a', prompt: 'after the edit', seed: 1 }),
    });
    expect(generated.status).toBe(200);

    const after = await waitFor(
      async () => {
        const models = await modelsOf('a');
        return models.length === 1 && models[0]?.key !== before?.key && models;
      },
      { what: 'one copy of mode a, the edited one', context: gateway.logs },
    );
    expect(after[0]).toMatchObject({ stale: false });
    expect(after[0]?.model_path.endsWith('two.safetensors')).toBe(true);
    const metrics = parsePrometheusText(await (await fetch(`${gateway.url}/metrics`)).text());
    expect(sampleSum(metrics, 'imagegen_model_evictions_total', { reason: 'stale' })).toBe(1);
  });
});
