import {
  copyFileSync,
  cpSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';

interface ModelFile {
  path: string;
  root: string;
  kind: string;
  architecture: string;
  format: string;
  bytes: number;
  modified_at: string;
  used_by: string[];
  resident: boolean;
  location: string | null;
  stale: boolean;
}

interface Inventory {
  roots: string[];
  polling: boolean;
  models: ModelFile[];
}

/** How long a new file may take to reach the model host's watcher and the listing: generous, it is a ceiling. */
const APPEAR_DEADLINE_MS = 60_000;

/**
 * GET /api/models on the real gateway and model host: the gateway hands the modes file's roots to the model host
 * it starts, and lists what the model host's watcher sees there.
 */
describe('GET /api/models', () => {
  let models: string;
  let gateway: Gateway;

  beforeAll(async () => {
    // Real paths: the model host lists files with the roots' symlinks resolved (/tmp may be a link).
    models = realpathSync(mkdtempSync(join(tmpdir(), 'e2e-inventory-')));
    cpSync(demoDir(), models, { recursive: true });
    const modesFile = join(models, 'modes.yaml');
    writeFileSync(modesFile, readFileSync(modesFile, 'utf8').split(demoDir()).join(models));
    gateway = await startGateway({ MODES_FILE: modesFile, MODES_WATCH: '0' });
  }, 240_000);

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    rmSync(models, { recursive: true, force: true });
  });

  async function inventory(): Promise<Inventory> {
    const response = await fetch(`${gateway.url}/api/models`);
    expect(response.status).toBe(200);
    return (await response.json()) as Inventory;
  }

  const at = (list: Inventory, absolute: string): ModelFile | undefined =>
    list.models.find((file) => join(file.root, file.path) === absolute);

  it('lists checkpoints, LoRAs and the upscaler with their modes, and the default mode resident on the device', async () => {
    const list = await inventory();
    expect(list.roots).toContain(models);

    const sdxl = at(list, join(models, 'tiny-sdxl.safetensors'));
    expect(sdxl).toEqual({
      path: 'tiny-sdxl.safetensors',
      root: models,
      kind: 'checkpoint',
      architecture: 'sdxl-base',
      format: 'safetensors',
      bytes: statSync(join(models, 'tiny-sdxl.safetensors')).size,
      modified_at: new Date(Math.trunc(statSync(join(models, 'tiny-sdxl.safetensors')).mtimeMs)).toISOString(),
      used_by: ['sdxl-general', 'sdxl-portrait'],
      resident: true,
      location: 'device',
      stale: false,
    });
    expect(at(list, join(models, 'tiny-sd15.safetensors'))).toMatchObject({
      kind: 'checkpoint',
      architecture: 'sd15',
      used_by: ['sd15-detail', 'sd15-fast'],
      resident: false,
      location: null,
    });
    expect(at(list, join(models, 'loras', 'tiny-sdxl-lora.safetensors'))).toMatchObject({
      kind: 'lora',
      architecture: 'lora',
      used_by: ['sdxl-portrait'],
      resident: false,
    });
    expect(at(list, join(models, 'upscalers', 'tiny-esrgan-x2.safetensors'))).toMatchObject({
      kind: 'upscaler',
      used_by: ['sd15-fast'],
    });
    // A config folder is no checkpoint: nothing to load on its own.
    expect(at(list, join(models, 'tiny-sd15.config'))).toMatchObject({ kind: 'config', format: 'diffusers-config' });
    // Every file is listed once, though lora_root lies inside model_root.
    const absolutes = list.models.map((file) => join(file.root, file.path));
    expect(new Set(absolutes).size).toBe(absolutes.length);
  });

  it('shows a file copied into the model root without a restart', async () => {
    const added = join(models, 'added-later.safetensors');
    expect(at(await inventory(), added)).toBeUndefined();
    copyFileSync(join(models, 'tiny-sd15.safetensors'), added);
    const bytes = statSync(added).size;

    // Until it is listed whole: the watcher can list the file while the copy is still writing it (a rescan a
    // moment after the first events), and lists it again once the writes have stopped.
    const deadline = Date.now() + APPEAR_DEADLINE_MS;
    let found: ModelFile | undefined;
    while (found?.bytes !== bytes && Date.now() < deadline) {
      found = at(await inventory(), added);
      if (found?.bytes !== bytes) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(found).toMatchObject({
      path: 'added-later.safetensors',
      kind: 'checkpoint',
      architecture: 'sd15',
      bytes,
      used_by: [],
      resident: false,
      location: null,
    });
  });
});
