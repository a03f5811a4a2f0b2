import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

describe('a request that waits past QUEUE_TIMEOUT_MS behind a mode switch', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    // 1 ms: any request that has to wait at all times out.
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      QUEUE_TIMEOUT_MS: '1',
    });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  function post(path: string, body: unknown): Promise<Response> {
    return fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  it('answers 504 Mode switch timed out, and the switch itself goes on', async () => {
    // The switch starts at once (nothing ahead); loading a LoRA mode from disk takes far longer than 1 ms.
    const queued = await post('/api/modes/switch', { mode: 'sdxl-portrait' });
    expect(queued.status).toBe(200);
    const waiting = await post('/generate', { mode: 'sdxl-portrait', prompt: 'behind the switch' });
    expect(waiting.status).toBe(504);
    const body = (await waiting.json()) as { error: string; message: string };
    expect(body.error).toBe('mode_switch_timeout');
    expect(body.message).toMatch(
      /^Mode switch timed out: waited \d+ ms in the queue while mode 'sdxl-portrait' was loading/,
    );

    // With nothing ahead, a request does not wait: it is served.
    await waitFor(
      async () => {
        const status = (await (await fetch(`${gateway.url}/api/models/status`)).json()) as { current_mode: string };
        return status.current_mode === 'sdxl-portrait';
      },
      { what: "the switch to 'sdxl-portrait' to finish", context: () => gateway.logs() },
    );
    const served = await post('/generate', { mode: 'sdxl-portrait', prompt: 'alone' });
    expect(served.status).toBe(200);
    expect(served.headers.get('x-mode')).toBe('sdxl-portrait');
    await served.arrayBuffer();
  });
});
