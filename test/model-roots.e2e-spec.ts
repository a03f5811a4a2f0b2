import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, pngSize, startGateway } from './support/gateway-process';

interface ErrorReply {
  error: string;
  message: string;
}

/**
 * The model host refuses files outside the model roots the gateway gave it, independently of the gateway's own
 * check of the modes file: a mode whose model is a link that stayed inside model_root when the gateway read the
 * file, and escapes it later, is refused by the model host when the mode is loaded. The gateway starts its own
 * model host here (no SIDECAR_ADDR), so the roots it hands over are what is being tested.
 */
describe('model roots, enforced by the model host', () => {
  let folder: string;
  let models: string;
  let link: string;
  let outside: string;
  let gateway: Gateway;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-roots-'));
    models = join(folder, 'models');
    cpSync(demoDir(), models, { recursive: true });
    // A good checkpoint outside the root: a load that reached it would succeed.
    mkdirSync(join(folder, 'outside'));
    outside = join(folder, 'outside', 'elsewhere.safetensors');
    copyFileSync(join(models, 'tiny-sd15.safetensors'), outside);
    link = join(models, 'link.safetensors');
    symlinkSync(join(models, 'tiny-sd15.safetensors'), link);
    mkdirSync(join(folder, 'config'));
    const modesFile = join(folder, 'config', 'modes.yaml');
    writeFileSync(
      modesFile,
      [
        `model_root: ${models}`,
        `lora_root: ${join(models, 'loras')}`,
        'default_mode: plain',
        'modes:',
        '  plain:',
        '    model: tiny-sd15.safetensors',
        '    config: tiny-sd15.config',
        '    default_size: 64x64',
        '    default_steps: 2',
        '  linked:',
        '    model: link.safetensors',
        '    config: tiny-sd15.config',
        '    default_size: 64x64',
        '    default_steps: 2',
        '',
      ].join('\n'),
    );
    gateway = await startGateway({ MODES_FILE: modesFile, SIDECAR_DEVICE: 'cpu' });
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(folder, { recursive: true, force: true });
  });

  function generate(mode: string): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse', mode, seed: 1 }),
    });
  }

  it('gives the model host the roots of the modes file, resolved', async () => {
    const roots = [realpathSync(models), realpathSync(join(models, 'loras'))].join(', ');
    await gateway.logged(`model roots given to the model host: ${roots}`);
  });

  it('loads a mode whose model is a link that stays inside model_root', async () => {
    const response = await generate('linked');
    expect(response.status).toBe(200);
    expect(pngSize(Buffer.from(await response.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });

  it('refuses it once the link points outside, and keeps serving the modes inside', async () => {
    expect((await generate('plain')).status).toBe(200);
    // Swapped by rename, as an attacker with write access to the root would: the gateway read the file long ago.
    const swapped = `${link}.new`;
    symlinkSync(outside, swapped);
    renameSync(swapped, link);

    const refused = await generate('linked');
    expect(refused.status).toBe(500);
    const body = (await refused.json()) as ErrorReply;
    expect(body.error).toBe('model_load_failed');
    expect(body.message).toBe(
      `Mode 'linked' could not be loaded: model_path: ${link} resolves outside the model roots ` +
        `(${realpathSync(models)}, ${realpathSync(join(models, 'loras'))}); refused`,
    );

    const plain = await generate('plain');
    expect(plain.status).toBe(200);
    expect(pngSize(Buffer.from(await plain.arrayBuffer()))).toEqual({ width: 64, height: 64 });
  });
});
