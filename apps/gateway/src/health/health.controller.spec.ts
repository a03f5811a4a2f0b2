import type { Server } from 'node:http';

import request from 'supertest';

import { FakeModelHostProcess } from '../../testing/fake-model-host.js';
import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { waitFor } from '../../testing/wait-for.js';
import { ModelLoadError, ModelHostUnavailableError } from '../errors/domain.errors.js';
import { WorkerPool } from '../queue/worker-pool.service.js';

async function eventually(check: () => unknown): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      try {
        await check();
        return true;
      } catch (error) {
        last = error;
        return false;
      }
    },
    { what: 'the check to pass' },
  ).catch((timeout: unknown) => {
    throw last ?? timeout;
  });
}

const NOT_LOADED = {
  error: 'not_ready',
  message: "Not ready: the default mode 'sdxl-general' is not loaded yet",
  statusCode: 503,
};

/** /ready's answer once the start has failed for `reason`. */
const startFailed = (reason: string): Record<string, unknown> => ({
  error: 'not_ready',
  message: `Not ready: the start failed (${reason}); ready once a mode loads: a reload of modes.yaml tries 'sdxl-general' again`,
  statusCode: 503,
});

describe('GET /health and GET /ready', () => {
  let t: TestApp;
  let modelHostReady: () => void;
  let modelHostFailed: (error: Error) => void;

  beforeEach(async () => {
    const process = new FakeModelHostProcess();
    process.ready = new Promise((resolve, reject) => {
      modelHostReady = resolve;
      modelHostFailed = reject;
    });
    t = await createTestApp({}, process);
  });

  afterEach(() => t.close());

  const get = (path: string): request.Test => request(t.app.getHttpServer() as Server).get(path);

  it('are live at once, and ready once the model host serves and the default mode is loaded', async () => {
    await get('/health').expect(200, { status: 'ok' });
    expect(t.process.started).toBe(true);
    await get('/ready').expect(503, NOT_LOADED);
    modelHostReady();
    await eventually(async () => {
      await get('/ready').expect(200, { status: 'ready', current_mode: 'sdxl-general' });
    });
    expect(t.modelHost.calls).toEqual(['load sdxl-general']);
  });

  it('are not ready while the model host does not serve', async () => {
    modelHostReady();
    await eventually(async () => {
      await get('/ready').expect(200);
    });
    t.modelHost.serving = false;
    // The connection's health watch hears it (NOT_SERVING counts at once); /ready reads its state.
    await eventually(async () => {
      await get('/ready').expect(503, {
        error: 'not_ready',
        message: 'Not ready: the model host is not serving',
        statusCode: 503,
      });
    });
    await get('/health').expect(200, { status: 'ok' });
  });

  it('stay not ready, saying why, when the default mode cannot be loaded, until a reload loads it', async () => {
    t.modelHost.failLoad = new ModelLoadError(
      'sdxl-general',
      'model file not found: /srv/models/sdxl/base.safetensors',
    );
    modelHostReady();
    // Once the failed load is recorded the startup is over: the 503 below is its outcome, not the initial state.
    await waitFor(() => t.app.get(WorkerPool).lastSwitchError, { what: 'the default mode load to fail' });
    expect(t.modelHost.calls).toEqual(['load sdxl-general']);
    await eventually(async () => {
      // /ready is public: the file's name, not the folders it lives in.
      await get('/ready').expect(
        503,
        startFailed("Mode 'sdxl-general' could not be loaded: model file not found: …/base.safetensors"),
      );
    });

    // The user fixes the cause; the reload tries the default mode again, in the queue, and it loads.
    t.modelHost.failLoad = undefined;
    await request(t.app.getHttpServer() as Server)
      .post('/api/modes/reload')
      .expect(200);
    await eventually(async () => {
      await get('/ready').expect(200, { status: 'ready', current_mode: 'sdxl-general' });
    });
    expect(t.modelHost.calls.filter((call) => call.startsWith('load '))).toEqual([
      'load sdxl-general',
      'load sdxl-general',
    ]);
  });

  it('stay not ready when the model host never comes up', async () => {
    const gaveUp = t.process.ready.catch(() => undefined);
    modelHostFailed(new ModelHostUnavailableError('the model host exited with code 1 before it was ready'));
    await gaveUp;
    // The startup's own handler of that rejection has run by the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    // The fake model host answers SERVING: only the failed startup keeps /ready at 503.
    expect(t.modelHost.serving).toBe(true);
    await get('/ready').expect(
      503,
      startFailed('Model host unavailable: the model host exited with code 1 before it was ready'),
    );
    expect(t.modelHost.calls).toEqual([]);
  });

  it('answer /ready 503 from the moment a shutdown begins', async () => {
    modelHostReady();
    await eventually(async () => {
      await get('/ready').expect(200);
    });
    t.app.get(WorkerPool).beginShutdown();
    await get('/ready').expect(503, {
      error: 'not_ready',
      message: 'Not ready: the server is shutting down',
      statusCode: 503,
    });
    await get('/health').expect(200, { status: 'ok' });
    const refused = await request(t.app.getHttpServer() as Server)
      .post('/generate')
      .send({ prompt: 'too late' })
      .expect(503);
    expect(refused.body).toEqual({
      error: 'shutting_down',
      message: 'Shutting down: the server takes no new work',
      statusCode: 503,
    });
  });
});
