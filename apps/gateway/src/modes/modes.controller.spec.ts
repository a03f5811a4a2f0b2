import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, TEST_MODES_YAML, type TestApp } from '../../testing/test-app.js';
import type { ErrorBody } from '../errors/http-error.table.js';
import type { ModesView } from './modes.controller.js';
import { ModesService } from './modes.service.js';

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
          scheduler: 'default',
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
          scheduler: 'lcm',
          clip_skip: 2,
          metadata: { description: 'fast' },
          superres: { model: 'upscalers/4x.safetensors', scale: 4 },
        },
        plain: {
          model: 'plain.safetensors',
          loras: [],
          default_size: '512x512',
          default_steps: 4,
          default_guidance: 1,
          scheduler: 'default',
        },
      },
    });
  });
});

describe('POST /api/modes/reload', () => {
  let t: TestApp;
  let server: Server;
  let modesFile: string;

  beforeEach(async () => {
    t = await createTestApp({ MODES_WATCH: '0' });
    server = t.app.getHttpServer() as Server;
    modesFile = t.app.get(ModesService).config.source;
  });

  afterEach(() => t.close());

  it("answers as the spec shows: status, modes_count, the modes' names and the default", async () => {
    writeFileSync(modesFile, `${TEST_MODES_YAML}  extra:\n    model: extra.safetensors\n`);
    const response = await request(server).post('/api/modes/reload').expect(200);
    expect(response.body).toEqual({
      status: 'reloaded',
      modes_count: 4,
      modes: ['sdxl-general', 'sd15-fast', 'plain', 'extra'],
      default_mode: 'sdxl-general',
      warnings: [],
    });
    await request(server)
      .get('/api/modes')
      .expect(200)
      .expect((r) => expect((r.body as ModesView).modes).toHaveProperty('extra'));
  });

  it('answers 400 with every problem and its YAML path, and keeps serving the old modes', async () => {
    writeFileSync(modesFile, TEST_MODES_YAML.replace('strength: 0.8', 'strength: strong').replace('plain:', 'pl ain:'));
    const response = await request(server).post('/api/modes/reload').expect(400);
    expect(response.body).toEqual({
      error: 'invalid_modes_file',
      message: expect.stringContaining('modes.sd15-fast.loras[1].strength: must be a number') as unknown,
      statusCode: 400,
      problems: [
        'modes.sd15-fast.loras[1].strength: must be a number',
        "modes.pl ain: mode names may only use letters, digits, '.', '_' and '-', and start with a letter or digit",
      ],
    });
    const modes = await request(server).get('/api/modes').expect(200);
    expect(Object.keys((modes.body as ModesView).modes)).toEqual(['sdxl-general', 'sd15-fast', 'plain']);
  });

  it('names a file the new modes name that is not on disk, in the reply and in status, until it is there', async () => {
    t.files.missing.add('/models/extra.safetensors');
    writeFileSync(modesFile, `${TEST_MODES_YAML}  extra:\n    model: extra.safetensors\n`);
    const warning = { path: 'modes.extra.model', message: 'file not found: /models/extra.safetensors' };
    const response = await request(server).post('/api/modes/reload').expect(200);
    expect(response.body).toMatchObject({ modes_count: 4, warnings: [warning] });
    const status = async (): Promise<unknown> =>
      ((await request(server).get('/api/models/status').expect(200)).body as { reload_warnings: unknown })
        .reload_warnings;
    expect(await status()).toEqual([warning]);
    const refused = await request(server).post('/generate').send({ mode: 'extra', prompt: 'x' }).expect(409);
    expect(refused.body).toEqual({
      error: 'model_file_missing',
      message: "Mode 'extra' cannot be loaded: file not found: /models/extra.safetensors",
      statusCode: 409,
    });
    // Copied in later: no reload needed.
    t.files.missing.delete('/models/extra.safetensors');
    expect(await status()).toEqual([]);
    await request(server).post('/generate').send({ mode: 'extra', prompt: 'x' }).expect(200);
  });

  it('answers a removed mode with 404 from then on', async () => {
    await request(server).post('/generate').send({ mode: 'plain', prompt: 'x' }).expect(200);
    writeFileSync(modesFile, TEST_MODES_YAML.slice(0, TEST_MODES_YAML.indexOf('  plain:')));
    await request(server).post('/api/modes/reload').expect(200);
    const response = await request(server).post('/generate').send({ mode: 'plain', prompt: 'x' }).expect(404);
    expect((response.body as ErrorBody).message).toBe("Mode 'plain' not found (modes: sdxl-general, sd15-fast)");
  });
});

describe('POST /api/modes/reload on the legacy setup', () => {
  it('answers 409 saying mode features need a modes.yaml', async () => {
    const t = await createTestApp({ MODES_FILE: 'missing.yaml', MODEL_ROOT: '/models', MODEL: 'sd15.safetensors' });
    try {
      const response = await request(t.app.getHttpServer() as Server)
        .post('/api/modes/reload')
        .expect(409);
      expect((response.body as ErrorBody).error).toBe('modes_disabled');
      expect((response.body as ErrorBody).message).toMatch(/^Mode reload needs a modes\.yaml/);
    } finally {
      await t.close();
    }
  });
});
