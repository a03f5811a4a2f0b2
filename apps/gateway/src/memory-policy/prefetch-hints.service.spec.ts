import type { Server } from 'node:http';
import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { waitFor } from '../../testing/wait-for.js';

/** The whole gateway over the fake model host: the hints follow the engine's plan. */
describe('PrefetchHintsService', () => {
  let t: TestApp;
  let server: Server;

  afterEach(async () => {
    await t.close();
  });

  async function post(mode: string, prompt: string): Promise<string> {
    const posted = await request(server).post('/api/jobs').send({ prompt, mode, num_inference_steps: 1 });
    expect(posted.status).toBe(202);
    return (posted.body as { id: string }).id;
  }

  const last = (): string[] | undefined => t.modelHost.prefetches.at(-1);

  it('hints the modes the plan runs next that the host does not hold, and drops a cancelled one', async () => {
    t = await createTestApp({ SIDECAR_DEVICE: 'cpu', SCHEDULER_MAX_DELAY_MS: '0' });
    server = t.app.getHttpServer() as Server;
    await waitFor(() => t.modelHost.resident.size > 0, { what: 'the default mode to load' });
    let release!: () => void;
    t.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    await post('sdxl-general', 'running');
    const fast = await post('sd15-fast', 'next');
    await post('sdxl-general', 'held');
    await post('plain', 'later');
    // sdxl-general is active: the plan's next modes without it, most wanted first.
    await waitFor(() => last()?.join() === 'sd15-fast,plain', {
      what: 'the hint',
    });

    await request(server).delete(`/api/jobs/${fast}`).expect(200);
    await waitFor(() => last()?.join() === 'plain', {
      what: 'the hint without the cancelled job',
    });

    release();
    t.modelHost.hold = undefined;
    await waitFor(() => last()?.length === 0, {
      what: 'an empty hint once nothing waits',
    });
  });

  it('sends nothing with PREFETCH=0', async () => {
    t = await createTestApp({ SIDECAR_DEVICE: 'cpu', PREFETCH: '0' });
    server = t.app.getHttpServer() as Server;
    let release!: () => void;
    t.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    await post('sdxl-general', 'running');
    const id = await post('plain', 'next');
    release();
    t.modelHost.hold = undefined;
    await waitFor(
      async () => ((await request(server).get(`/api/jobs/${id}`)).body as { state: string }).state === 'completed',
      {
        what: 'the second job to complete',
      },
    );
    expect(t.modelHost.prefetches).toEqual([]);
  });
});
