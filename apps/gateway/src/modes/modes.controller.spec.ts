import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';

describe('GET /api/modes', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });

  afterAll(() => t.close());

  it('lists the modes as the spec shows them: paths as written, LoRAs in full form, defaults filled in', async () => {
    const response = await request(t.app.getHttpServer() as Server)
      .get('/api/modes')
      .expect(200);
    expect(response.body).toEqual({
      default_mode: 'sdxl-general',
      modes: {
        'sdxl-general': {
          model: 'sdxl/sdxl-base-1.0.safetensors',
          loras: [],
          default_size: '1024x1024',
          default_steps: 30,
          default_guidance: 7.5,
        },
        'sd15-fast': {
          model: 'sd15/dreamshaper-lcm.safetensors',
          loras: [
            { path: 'lcm-lora-sd15.safetensors', strength: 1, adapter_name: 'lcm-lora-sd15' },
            { path: 'detail.safetensors', strength: 0.8, adapter_name: 'detail' },
          ],
          default_size: '512x512',
          default_steps: 4,
          default_guidance: 1,
          metadata: { description: 'fast' },
        },
        plain: {
          model: 'plain.safetensors',
          loras: [],
          default_size: '512x512',
          default_steps: 4,
          default_guidance: 1,
        },
      },
    });
  });
});
