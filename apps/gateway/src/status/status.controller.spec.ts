import type { Server } from 'node:http';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { jest } from '@jest/globals';

import { WorkerPool } from '../queue/worker-pool.service.js';
import { ModelHostUnavailableError } from '../errors/domain.errors.js';
import { HostsService } from '../model-host/hosts.service.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import { toVramView } from './status.service.js';
import { waitFor } from '../../testing/wait-for.js';

const GiB = 2 ** 30;

describe('GET /api/models/status and GET /api/vram', () => {
  let t: TestApp;
  let server: Server;

  beforeEach(async () => {
    t = await createTestApp();
    server = t.app.getHttpServer() as Server;
  });

  afterEach(() => t.close());

  /** POST /generate switching to sd15-fast, then waits for the two reads it causes: after the load, and idle. */
  async function generateAndSettle(): Promise<void> {
    let reads = 0;
    const getMemory = t.modelHost.getMemory.bind(t.modelHost);
    t.modelHost.getMemory = () => {
      reads += 1;
      return getMemory();
    };
    await request(server).post('/generate').send({ prompt: 'x', mode: 'sd15-fast' }).expect(200);
    await waitFor(() => reads >= 2, { what: 'the read after the load and the one once the model host is idle' });
    t.modelHost.getMemory = getMemory;
  }

  it("answers the spec's keys, in GiB, with every resident model named by its mode", async () => {
    await generateAndSettle();
    const body: unknown = (await request(server).get('/api/models/status').expect(200)).body;
    expect(Object.keys(body as object)).toEqual([
      'current_mode',
      'queue_size',
      'vram',
      'hosts',
      'last_reload_error',
      'reload_warnings',
      'last_switch_error',
      'memory_policy',
    ]);
    expect(body).toEqual({
      current_mode: 'sd15-fast',
      queue_size: 0,
      vram: {
        device: 'Fake CPU',
        total_gb: 8,
        used_gb: 1,
        available_gb: 7,
        usage_percent: 12.5,
        models_loaded: 2,
        models: [
          {
            name: 'sdxl-general',
            model_path: '/models/sdxl/sdxl-base-1.0.safetensors',
            vram_gb: 0,
            loras: [],
            key: expect.stringMatching(/^sdxl-general-[0-9a-f]{12}$/) as unknown,
            architecture: 'sd15',
            stale: false,
            bytes: 2 ** 20,
            host: 'test/local',
          },
          {
            name: 'sd15-fast',
            model_path: '/models/sd15/dreamshaper-lcm.safetensors',
            vram_gb: 0,
            loras: [
              { path: '/models/loras/lcm-lora-sd15.safetensors', strength: 1, adapter_name: 'lcm-lora-sd15' },
              { path: '/models/loras/detail.safetensors', strength: 0.8, adapter_name: 'detail' },
            ],
            key: expect.stringMatching(/^sd15-fast-[0-9a-f]{12}$/) as unknown,
            architecture: 'sd15',
            stale: false,
            bytes: 2 ** 20,
            host: 'test/local',
          },
        ],
        device_type: 'cpu',
        as_of: new Date(t.app.get(HostsService).default.registry.lastMemoryAt!).toISOString(),
      },
      hosts: [
        {
          id: 'test/local',
          device: 'cpu',
          state: 'serving',
          vram: expect.objectContaining({ device: 'Fake CPU', models_loaded: 2 }) as unknown,
          current_mode: 'sd15-fast',
          queue_size: 0,
        },
      ],
      last_reload_error: null,
      reload_warnings: [],
      last_switch_error: null,
      memory_policy: expect.arrayContaining([
        { mode: 'sd15-fast', keep_alive: -1, keep_alive_ms: null, pinned: false, resident: 'device', expires_at: null },
      ]) as unknown,
    });
    // With one host, the whole is that host: /api/vram is status' vram, then the host without its queue.
    const { vram: whole, hosts } = body as { vram: object; hosts: { vram: object }[] };
    expect(hosts[0]?.vram).toEqual(whole);
    const vram = await request(server).get('/api/vram').expect(200);
    expect(vram.body).toEqual({
      ...whole,
      hosts: [{ id: 'test/local', device: 'cpu', state: 'serving', vram: whole }],
    });
  });

  it('answers from the figures the registry holds, asking the model host nothing', async () => {
    await generateAndSettle();
    const getMemory = jest.spyOn(t.modelHost, 'getMemory');
    for (let i = 0; i < 10; i += 1) {
      await request(server).get('/api/models/status').expect(200);
      await request(server).get('/api/vram').expect(200);
    }
    expect(getMemory).not.toHaveBeenCalled();
  });

  it('answers new figures as soon as the registry holds them, in the same millisecond too', async () => {
    await generateAndSettle();
    const registry = t.app.get(HostsService).default.registry;
    const before = (await request(server).get('/api/vram').expect(200)).body as { used_gb: number };
    expect(before.used_gb).toBe(1);
    const now = Date.now();
    const clock = jest.spyOn(Date, 'now').mockReturnValue(now);
    try {
      registry.recordMemory({ ...registry.lastMemory!, usedBytes: 3 * 2 ** 30 });
      const first = (await request(server).get('/api/vram').expect(200)).body as { used_gb: number };
      registry.recordMemory({ ...registry.lastMemory!, usedBytes: 5 * 2 ** 30 });
      const second = (await request(server).get('/api/models/status').expect(200)).body as {
        vram: { used_gb: number; as_of: string };
      };
      expect([first.used_gb, second.vram.used_gb]).toEqual([3, 5]);
      expect(second.vram.as_of).toBe(new Date(now).toISOString());
    } finally {
      clock.mockRestore();
    }
  });

  it('reads the figures again once a job has finished', async () => {
    const read: string[] = [];
    const getMemory = t.modelHost.getMemory.bind(t.modelHost);
    t.modelHost.getMemory = () => {
      read.push(`memory after ${t.modelHost.calls.length} calls`);
      return getMemory();
    };
    await request(server).post('/generate').send({ prompt: 'x', mode: 'sd15-fast' }).expect(200);
    // The load of sd15-fast, then its generation: a read after the load, and one once the model host is idle.
    expect(t.modelHost.calls.slice(-2)).toEqual(['load sd15-fast', 'generate sd15-fast x']);
    const calls = t.modelHost.calls.length;
    await waitFor(() => read.length >= 2, { what: 'the read once the model host is idle' });
    expect(read.slice(-2)).toEqual([`memory after ${calls - 1} calls`, `memory after ${calls} calls`]);
  });

  it('counts the waiting jobs in queue_size, not the running one', async () => {
    let release!: () => void;
    t.modelHost.hold = new Promise((resolve) => (release = resolve));
    const pending = [1, 2, 3].map((n) =>
      request(server)
        .post('/generate')
        .send({ prompt: `p${n}` })
        .then((r) => r),
    );
    const pool = t.app.get(WorkerPool);
    await waitFor(async () => (await pool.queueSize) >= 2, { what: 'two jobs to queue' });
    const body: unknown = (await request(server).get('/api/models/status').expect(200)).body;
    expect((body as { queue_size: number }).queue_size).toBe(2);
    release();
    for (const response of await Promise.all(pending)) expect(response.status).toBe(200);
  });

  it('answers 503 with the reason while the model host is lost, asking it nothing', async () => {
    const getMemory = jest.spyOn(t.modelHost, 'getMemory');
    t.modelHost.serving = false;
    t.process.lose('the model host was killed by SIGKILL unexpectedly');
    const body: unknown = (await request(server).get('/api/models/status').expect(503)).body;
    expect(body).toEqual({
      error: 'model_host_unavailable',
      message: 'Model host unavailable: the model host was killed by SIGKILL unexpectedly',
      statusCode: 503,
    });
    expect(getMemory).not.toHaveBeenCalled();
  });

  it('answers 503 when the registry holds no figures and the model host cannot be reached', async () => {
    t.modelHost.getMemory = () => Promise.reject(new ModelHostUnavailableError('connect ENOENT'));
    t.app.get(HostsService).default.registry.clear();
    const body: unknown = (await request(server).get('/api/vram').expect(503)).body;
    expect(body).toEqual({
      error: 'model_host_unavailable',
      message: 'Model host unavailable: connect ENOENT',
      statusCode: 503,
    });
    await request(server).get('/api/models/status').expect(503);
  });
});

describe('toVramView', () => {
  const stats: MemoryStats = {
    device: 'cuda',
    deviceName: 'NVIDIA GeForce RTX 3090',
    totalBytes: 24 * GiB,
    usedBytes: 12.5 * GiB,
    availableBytes: 11.5 * GiB,
    models: [
      {
        key: 'sdxl-general-0123456789ab',
        modelPath: '/models/sdxl/sdxl-base-1.0.safetensors',
        bytes: 12.5 * GiB,
        loras: [],
        tier: 'device',
        lastUsedUnixMs: 0,
        architecture: 'sdxl-base',
        inRamTier: false,
        baseKey: 'sdxl-general-0123456789ab',
        stale: false,
      },
      {
        key: 'sd15-fast-0123456789ab',
        modelPath: '/models/sd15.safetensors',
        bytes: 2 * GiB,
        loras: [],
        tier: 'ram',
        lastUsedUnixMs: 0,
        architecture: 'sd15',
        inRamTier: true,
        baseKey: 'sd15-fast-0123456789ab',
        stale: false,
      },
    ],
    reserveBytes: 0,
    ramTierBytes: 2 * GiB,
    ramTierCapacityBytes: 8 * GiB,
  };

  it("gives the spec's example figures for its example card, leaving out the RAM tier", () => {
    expect(toVramView(stats, 'test/cpu')).toEqual({
      device: 'NVIDIA GeForce RTX 3090',
      total_gb: 24.0,
      used_gb: 12.5,
      available_gb: 11.5,
      usage_percent: 52.1,
      models_loaded: 1,
      models: [
        {
          name: 'sdxl-general',
          model_path: '/models/sdxl/sdxl-base-1.0.safetensors',
          vram_gb: 12.5,
          loras: [],
          key: 'sdxl-general-0123456789ab',
          architecture: 'sdxl-base',
          stale: false,
          bytes: 12.5 * GiB,
          host: 'test/cpu',
        },
      ],
      device_type: 'cuda',
    });
  });

  it('rounds GiB to 2 decimals and the percentage to 1, and survives a zero total', () => {
    const view = toVramView(
      { ...stats, totalBytes: 3 * GiB, usedBytes: 1 * GiB, availableBytes: 2 * GiB, models: [] },
      'test/cpu',
    );
    expect(view).toMatchObject({ total_gb: 3, used_gb: 1, available_gb: 2, usage_percent: 33.3, models_loaded: 0 });
    expect(toVramView({ ...stats, totalBytes: 1_234_567_890, models: [] }, 'test/cpu').total_gb).toBe(1.15);
    expect(toVramView({ ...stats, totalBytes: 0, usedBytes: 0, models: [] }, 'test/cpu').usage_percent).toBe(0);
  });
});
