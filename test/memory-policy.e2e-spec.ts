import { copyFileSync, cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dump } from 'js-yaml';

import { demoDir } from './support/demo-models';
import { openEventStream } from './support/event-stream';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

const ADMIN = 'admin-key-memory-policy';
const USER = 'user-key-memory-policy';

interface ModePolicy {
  mode: string;
  keep_alive: string | number;
  keep_alive_ms: number | null;
  pinned: boolean;
  resident: 'device' | 'ram' | null;
  expires_at: string | null;
}

interface Status {
  current_mode: string | null;
  vram: { models: { name: string }[] };
  memory_policy: ModePolicy[];
}

interface JobRecord {
  id: string;
  state: string;
  finished_at: string | null;
  switch: { from_mode: string | null; to_mode: string; source: string } | null;
  error: { error: string; message: string } | null;
}

/**
 * Memory policy per mode (README, "Memory policy"), on one gateway: keep_alive 0 and a short keep_alive, pinned
 * modes that make-room evicts around (and a load refused 503 when only pinned ones are in the way), and
 * POST /api/models/unload.
 *
 * Four copies of the tiny SD1.5 file are four pipelines of one size; MEMORY_CAP_BYTES holds two and a half of
 * them, so a third load must evict one, and RAM_CACHE_BYTES one and a half: the RAM tier holds one pipeline. A
 * pipeline takes about its file's size on the CPU (float32, like the file): the half is the margin either way.
 */
describe('memory policy', () => {
  let gateway: Gateway;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'e2e-memory-policy-'));
    const demo = demoDir();
    for (const copy of ['a', 'b', 'c', 'd'])
      copyFileSync(join(demo, 'tiny-sd15.safetensors'), join(folder, `${copy}.safetensors`));
    copyFileSync(join(demo, 'loras', 'tiny-sd15-lora.safetensors'), join(folder, 'lora.safetensors'));
    cpSync(join(demo, 'tiny-sd15.config'), join(folder, 'config'), { recursive: true });
    const mode = (file: string, policy: Record<string, unknown>): Record<string, unknown> => ({
      model: `${file}.safetensors`,
      config: 'config',
      default_size: '64x64',
      default_steps: 1,
      ...policy,
    });
    writeFileSync(
      join(folder, 'modes.yaml'),
      dump({
        model_root: folder,
        lora_root: folder,
        default_mode: 'pinned-a',
        modes: {
          'pinned-a': mode('a', { pinned: true }),
          'pinned-c': mode('c', { pinned: true }),
          other: mode('b', {}),
          zero: mode('b', { keep_alive: 0 }),
          brief: mode('d', { keep_alive: '2s' }),
          // pinned-a's checkpoint with a LoRA: one base pipeline on the device for both.
          'lora-brief': mode('a', { loras: ['lora.safetensors'], keep_alive: '1s' }),
        },
      }),
    );
    const unit = statSync(join(folder, 'a.safetensors')).size;
    gateway = await startGateway({
      MODES_FILE: join(folder, 'modes.yaml'),
      MODES_WATCH: '0',
      MEMORY_CAP_BYTES: String(Math.round(unit * 2.5)),
      RAM_CACHE_BYTES: String(Math.round(unit * 1.5)),
      API_KEY: USER,
      ADMIN_API_KEY: ADMIN,
    });
  }, 300_000);

  afterAll(async () => {
    await gateway?.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  function call(path: string, init: { method?: string; body?: unknown; key?: string } = {}): Promise<Response> {
    return fetch(`${gateway.url}${path}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { Authorization: `Bearer ${init.key ?? ADMIN}`, 'Content-Type': 'application/json' },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    });
  }

  async function status(): Promise<Status> {
    const response = await call('/api/models/status');
    expect(response.status).toBe(200);
    return (await response.json()) as Status;
  }

  async function policy(mode: string): Promise<ModePolicy> {
    const entry = (await status()).memory_policy.find((p) => p.mode === mode);
    if (!entry) throw new Error(`no memory_policy entry for ${mode}`);
    return entry;
  }

  /** The modes on the device. */
  async function resident(): Promise<string[]> {
    return (await status()).memory_policy
      .filter((p) => p.resident === 'device')
      .map((p) => p.mode)
      .sort();
  }

  /** Queues a generation of the mode and waits for the job to end; returns its record. */
  async function job(mode: string): Promise<JobRecord> {
    const queued = await call('/api/jobs', { body: { mode, prompt: 'a lighthouse', seed: 7 } });
    expect(queued.status).toBe(202);
    const { id } = (await queued.json()) as JobRecord;
    return waitFor(
      async () => {
        const record = (await (await call(`/api/jobs/${id}`)).json()) as JobRecord;
        return ['completed', 'failed', 'cancelled'].includes(record.state) && record;
      },
      { what: `job ${id} (${mode}) to end`, context: gateway.logs },
    );
  }

  /** Waits until the mode's keep-alive took it off the device: to the RAM tier. */
  function parked(mode: string): Promise<true> {
    return waitFor(async () => (await policy(mode)).resident === 'ram', {
      what: `mode ${mode} to be parked in the RAM tier`,
      context: gateway.logs,
    });
  }

  it("shows each mode's policy in the status", async () => {
    const modes = Object.fromEntries((await status()).memory_policy.map((p) => [p.mode, p]));
    expect(modes['pinned-a']).toEqual({
      mode: 'pinned-a',
      keep_alive: -1,
      keep_alive_ms: null,
      pinned: true,
      resident: 'device',
      expires_at: null,
    });
    expect(modes['zero']).toMatchObject({ keep_alive: 0, keep_alive_ms: 0, pinned: false, resident: null });
    expect(modes['brief']).toMatchObject({ keep_alive: '2s', keep_alive_ms: 2000, resident: null });
  });

  it('takes a keep_alive: 0 mode off the device after each job; the next one brings it back from RAM', async () => {
    const first = await job('zero');
    expect(first.state).toBe('completed');
    expect(first.switch).toMatchObject({ to_mode: 'zero', source: 'disk' });
    await parked('zero');
    const second = await job('zero');
    expect(second.state).toBe('completed');
    expect(second.switch).toMatchObject({ to_mode: 'zero', source: 'ram' });
    await parked('zero');
    expect(await resident()).toEqual(['pinned-a']);
  });

  it('keeps a mode with a short keep_alive on the device until it expires, then parks it', async () => {
    const stream = await openEventStream(`${gateway.url}/api/events?types=model.`, {
      Authorization: `Bearer ${ADMIN}`,
    });
    try {
      const done = await job('brief');
      expect(done.state).toBe('completed');
      const right = await policy('brief');
      expect(right.resident).toBe('device');
      // Armed when the job ended, for the mode's keep_alive.
      const armedAfter = Date.parse(right.expires_at ?? '') - Date.parse(done.finished_at ?? '');
      expect(Math.abs(armedAfter - 2000)).toBeLessThan(1000);
      await parked('brief');
      expect((await status()).current_mode).toBeNull();
      // The RAM tier holds one pipeline: brief's took zero's place there, and the stream says zero left it.
      expect((await policy('zero')).resident).toBeNull();
      const dropped = await stream.next((event) => event.type === 'model.evicted' && event.data.mode === 'zero');
      expect(dropped.data).toMatchObject({ reason: 'ram-full', tier: null });
      expect(dropped.data.bytes).toBeGreaterThan(0);
      expect(
        stream.events.find((event) => event.type === 'model.evicted' && event.data.mode === 'brief')?.data,
      ).toMatchObject({ reason: 'keep-alive' });
    } finally {
      stream.close();
    }
  });

  it('evicts around pinned modes, and refuses a load that only pinned modes are in the way of', async () => {
    expect((await job('other')).state).toBe('completed');
    expect(await resident()).toEqual(['other', 'pinned-a']);
    // Room for two: pinned-a is the least recently used, but pinned, so `other` makes room (to the RAM tier).
    expect((await job('pinned-c')).state).toBe('completed');
    expect(await resident()).toEqual(['pinned-a', 'pinned-c']);
    expect((await policy('other')).resident).toBe('ram');

    const refused = await job('other');
    expect(refused.state).toBe('failed');
    expect(refused.error?.error).toBe('pinned_models_in_the_way');
    expect(refused.error?.message).toContain("Mode 'other' cannot be loaded without evicting pinned mode(s)");
    expect(refused.error?.message).toMatch(/pinned-a/);
    expect(refused.error?.message).toMatch(/pinned-c/);
    const direct = await call('/generate', { body: { mode: 'other', prompt: 'a lighthouse' } });
    expect(direct.status).toBe(503);
    expect(await resident()).toEqual(['pinned-a', 'pinned-c']);
  });

  it('unloads one mode or all of them on POST /api/models/unload, for admins only', async () => {
    const forbidden = await call('/api/models/unload', { body: { mode: 'pinned-c' }, key: USER });
    expect(forbidden.status).toBe(403);
    expect((await call('/api/models/unload', { body: { mode: 'nope' } })).status).toBe(404);
    const invalid = await call('/api/models/unload', { body: { mode: 'pinned-c', all: true } });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { message: string }).message).toContain('all: give either mode or all');

    const one = await call('/api/models/unload', { body: { mode: 'pinned-c' } });
    expect(one.status).toBe(200);
    const freed = (await one.json()) as { modes: string[]; keys: string[]; freed_bytes: number };
    expect(freed.modes).toEqual(['pinned-c']);
    expect(freed.keys).toEqual([expect.stringMatching(/^pinned-c-[0-9a-f]{12}$/)]);
    expect(freed.freed_bytes).toBeGreaterThan(0);
    expect(await resident()).toEqual(['pinned-a']);

    // Room again: the mode that was refused comes back from the RAM tier.
    const back = await job('other');
    expect(back.state).toBe('completed');
    expect(back.switch).toMatchObject({ to_mode: 'other', source: 'ram' });

    const all = await call('/api/models/unload', { body: { all: true } });
    expect(all.status).toBe(200);
    const everything = (await all.json()) as { modes: string[]; freed_bytes: number; current_mode: string | null };
    expect(everything.modes.sort()).toEqual(['other', 'pinned-a']);
    expect(everything.freed_bytes).toBeGreaterThan(0);
    expect(everything.current_mode).toBeNull();
    const after = await status();
    expect(after.vram.models).toEqual([]);
    expect(after.current_mode).toBeNull();
  });

  it("keeps a base pipeline on the device when a LoRA variant's keep_alive runs out and its base mode wants it", async () => {
    expect((await job('pinned-a')).state).toBe('completed');
    const since = gateway.logs().length;
    const variant = await job('lora-brief');
    expect(variant.state).toBe('completed');
    expect(variant.switch).toMatchObject({ to_mode: 'lora-brief', source: 'shared-base' });
    await gateway.logged(
      "keep-alive of mode 'lora-brief' expired; its pipeline stays on the device for 'pinned-a', which share it",
      since,
    );
    expect(await resident()).toEqual(['lora-brief', 'pinned-a']);
    // Back to the base mode without a load: its pipeline never left the device.
    const back = await job('pinned-a');
    expect(back.state).toBe('completed');
    expect(back.switch).toMatchObject({ to_mode: 'pinned-a', source: 'resident' });
  });
});
