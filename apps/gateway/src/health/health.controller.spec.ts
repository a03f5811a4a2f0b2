import type { Server } from 'node:http';

import request from 'supertest';

import { FakeSidecarProcess } from '../../testing/fake-sidecar.js';
import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { ModelLoadError, SidecarUnavailableError } from '../errors/domain.errors.js';

async function eventually(check: () => unknown): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await check();
      return;
    } catch (error) {
      if (attempt > 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('GET /health and GET /ready', () => {
  let t: TestApp;
  let sidecarReady: () => void;
  let sidecarFailed: (error: Error) => void;

  beforeEach(async () => {
    const process = new FakeSidecarProcess();
    process.ready = new Promise((resolve, reject) => {
      sidecarReady = resolve;
      sidecarFailed = reject;
    });
    t = await createTestApp({}, process);
  });

  afterEach(() => t.close());

  const get = (path: string): request.Test => request(t.app.getHttpServer() as Server).get(path);

  it('are live at once, and ready once the sidecar serves and the default mode is loaded', async () => {
    await get('/health').expect(200, { status: 'ok' });
    expect(t.process.started).toBe(true);
    await get('/ready').expect(503, {
      error: 'not_ready',
      message: "Not ready: the default mode 'sdxl-general' is not loaded yet",
      statusCode: 503,
    });
    sidecarReady();
    await eventually(async () => {
      await get('/ready').expect(200, { status: 'ready', current_mode: 'sdxl-general' });
    });
    expect(t.sidecar.calls).toEqual(['load sdxl-general']);
  });

  it('are not ready while the sidecar does not serve', async () => {
    sidecarReady();
    await eventually(async () => {
      await get('/ready').expect(200);
    });
    t.sidecar.serving = false;
    await get('/ready').expect(503, {
      error: 'not_ready',
      message: 'Not ready: the model host is not serving',
      statusCode: 503,
    });
    await get('/health').expect(200, { status: 'ok' });
  });

  it('stay not ready when the default mode cannot be loaded', async () => {
    t.sidecar.failLoad = new ModelLoadError('sdxl-general', 'model file not found');
    sidecarReady();
    await eventually(() => expect(t.sidecar.calls).toEqual(['load sdxl-general']));
    await get('/ready').expect(503);
  });

  it('stay not ready when the sidecar never comes up', async () => {
    sidecarFailed(new SidecarUnavailableError('the model host exited with code 1 before it was ready'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await get('/ready').expect(503);
    expect(t.sidecar.calls).toEqual([]);
  });
});
