import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { ModesService } from '../modes/modes.service.js';
import type { InventoryFile } from '../model-host/model-host.types.js';
import type { ModelInventoryDto } from './dto/model-file.dto.js';

const file = (path: string, root: string, architecture: string, extra: Partial<InventoryFile> = {}): InventoryFile => ({
  path,
  root,
  architecture,
  format: 'safetensors',
  sizeBytes: 1234,
  mtimeUnixMs: Date.UTC(2026, 0, 2, 3, 4, 5),
  reason: '',
  residentKeys: [],
  stale: false,
  ...extra,
});

/** GET /api/models through the whole app, over the fake model host's inventory. */
describe('GET /api/models', () => {
  let t: TestApp;
  let server: Server;

  beforeAll(async () => {
    t = await createTestApp();
    server = t.app.getHttpServer() as Server;
  });

  afterAll(() => t.close());

  it('lists each file relative to its root, with its kind, the modes that use it and where it is loaded', async () => {
    const fast = t.app.get(ModesService).config.modes.get('sd15-fast');
    if (!fast) throw new Error('sd15-fast missing from the test modes file');
    await t.modelHost.load(fast);
    t.modelHost.inventoryFiles = [
      file('/models/sd15/dreamshaper-lcm.safetensors', '/models', 'sd15', { residentKeys: [fast.key], stale: true }),
      file('/models/loras/detail.safetensors', '/models/loras', 'lora', { residentKeys: [fast.key] }),
      file('/models/upscalers/4x.safetensors', '/models', 'upscaler'),
      file('/models/odd.ckpt', '/models', 'unknown', { format: 'pickle', reason: 'pickle files are not opened' }),
      file('/models/sdxl/sdxl-base-1.0.safetensors', '/models', 'sdxl-base'),
      file('/models/configs/sd15', '/models', 'sd15', { format: 'diffusers-config' }),
    ];
    const response = await request(server).get('/api/models').expect(200);
    const body = response.body as ModelInventoryDto;
    expect(body.polling).toBe(false);
    expect(body.models).toEqual([
      {
        path: 'sd15/dreamshaper-lcm.safetensors',
        root: '/models',
        kind: 'checkpoint',
        architecture: 'sd15',
        format: 'safetensors',
        bytes: 1234,
        modified_at: '2026-01-02T03:04:05.000Z',
        used_by: ['sd15-fast'],
        resident: true,
        location: 'device',
        stale: true,
      },
      expect.objectContaining({ path: 'detail.safetensors', kind: 'lora', used_by: ['sd15-fast'], resident: true }),
      expect.objectContaining({ path: 'upscalers/4x.safetensors', kind: 'upscaler', used_by: ['sd15-fast'] }),
      expect.objectContaining({
        path: 'odd.ckpt',
        kind: 'unknown',
        format: 'pickle',
        reason: 'pickle files are not opened',
        used_by: [],
        resident: false,
        location: null,
      }),
      expect.objectContaining({
        path: 'sdxl/sdxl-base-1.0.safetensors',
        kind: 'checkpoint',
        used_by: ['sdxl-general'],
      }),
      expect.objectContaining({ path: 'configs/sd15', kind: 'config', architecture: 'sd15' }),
    ]);
  });
});
