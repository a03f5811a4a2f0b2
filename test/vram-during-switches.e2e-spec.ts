import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';

/**
 * GET /api/vram and GET /api/models/status polled without pause while requests alternate between a mode and the
 * same checkpoint with a LoRA (adapters attached, switched and detached on one shared base on the model host,
 * whose memory figures the gateway reads meanwhile): every poll answers 200. The model host's bookkeeping race
 * that once made such a read fail is covered at its source by sidecar/tests/test_bookkeeping_race.py.
 */
describe('memory figures during LoRA mode switches', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway({ MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0' });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  it('never answers anything but 200 while modes switch', async () => {
    const polled = new Map<number, number>();
    let switching = true;
    const poll = async (path: string): Promise<void> => {
      while (switching) {
        const response = await fetch(`${gateway.url}${path}`);
        await response.arrayBuffer();
        polled.set(response.status, (polled.get(response.status) ?? 0) + 1);
      }
    };
    const pollers = [poll('/api/vram'), poll('/api/models/status')];

    const served: string[] = [];
    try {
      for (let round = 0; round < 6; round += 1) {
        for (const mode of ['sdxl-portrait', 'sdxl-general']) {
          const response = await fetch(`${gateway.url}/generate`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ mode, prompt: `round ${round}`, num_inference_steps: 1, size: '32x32' }),
          });
          await response.arrayBuffer();
          expect(response.status).toBe(200);
          served.push(response.headers.get('x-mode') ?? '');
        }
      }
    } finally {
      switching = false;
      await Promise.all(pollers);
    }

    expect(served).toEqual(Array.from({ length: 6 }, () => ['sdxl-portrait', 'sdxl-general']).flat());
    expect([...polled.keys()]).toEqual([200]);
    expect(polled.get(200)).toBeGreaterThan(12);
  });
});
