import { request as httpRequest } from 'node:http';
import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { Gateway, startGateway } from './support/gateway-process';
import { ModelHost, startModelHost } from './support/model-host-process';
import { waitFor } from './support/wait-for';

/** Minutes on these CPUs if nobody stops it: 150 steps at 512x512. */
// The demo's sd15-fast samples with LCM, which takes at most 50 steps: a long job asks for another sampler.
const LONG = {
  mode: 'sd15-fast',
  prompt: 'a very long one',
  num_inference_steps: 150,
  size: '512x512',
  scheduler: 'euler_a',
};

describe('client disconnects and model host crashes, on the real model host', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    // In submission order (no grouping by mode), so that the mode active at the end is the last job's.
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      SCHEDULER_MAX_DELAY_MS: '0',
    });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  function post(body: unknown): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** A request whose client can walk away: `abandon()` closes the connection. */
  function abandonable(body: unknown): { abandon: () => void } {
    const { hostname, port } = new URL(gateway.url);
    const client = httpRequest({
      // An IPv6 literal comes bracketed in a URL, bare in a socket address.
      host: hostname.replace(/^\[(.*)\]$/, '$1'),
      port,
      method: 'POST',
      path: '/generate',
      headers: { 'Content-Type': 'application/json' },
    });
    client.on('error', () => undefined);
    client.end(JSON.stringify(body));
    return { abandon: () => client.destroy() };
  }

  async function status(): Promise<{ current_mode: string | null; queue_size: number }> {
    const response = await fetch(`${gateway.url}/api/models/status`);
    return (await response.json()) as { current_mode: string | null; queue_size: number };
  }

  async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
    await waitFor(condition, { what, context: () => gateway.logs() });
  }

  it('drops a queued job and stops the running generation when their clients go away', async () => {
    const logStart = gateway.logs().length;
    const running = abandonable(LONG);
    // The switch to sd15-fast, then the generation, are under way once nothing waits. Whether the cancel below
    // meets the generation on the model host or just before it is sent, it stops it.
    await until(async () => (await status()).current_mode === 'sd15-fast', 'the switch to sd15-fast');
    const queued = abandonable({ mode: 'sd15-fast', prompt: 'queued, then abandoned' });
    await until(async () => (await status()).queue_size === 1, 'the second request to queue');
    queued.abandon();
    await until(async () => (await status()).queue_size === 0, 'the abandoned job to leave the queue');

    running.abandon();
    // Served at all within the test's timeout: behind a 150-step 512x512 generation run to its end it would wait
    // for minutes on a CPU.
    const next = await post({ mode: 'sd15-fast', prompt: 'next' });
    expect(next.status).toBe(200);
    await next.arrayBuffer();
    // The gateway cancelled the call because the client went away.
    await gateway.logged('client gone: generation cancelled', logStart);
  });

  it('keeps the queued jobs through a SIGKILL of the model host and runs them once it is back', async () => {
    const pids = [...gateway.logs().matchAll(/model host started \(pid (\d+)\)/g)].map((match) => Number(match[1]));
    const pid = pids.at(-1);
    expect(pid).toBeGreaterThan(0);

    // In a mode of its own: once that mode is current, the long job (and no other) runs.
    const running = post({ ...LONG, mode: 'sd15-detail' });
    await until(async () => (await status()).current_mode === 'sd15-detail', 'the long generation to start');
    const queuedModes = ['sd15-fast', 'sdxl-portrait', 'sd15-fast'];
    const queued = queuedModes.map((mode, i) => post({ mode, prompt: `queued ${i}` }));
    await until(async () => (await status()).queue_size === 3, 'three queued jobs');

    process.kill(pid as number, 'SIGKILL');

    // The job that was running fails with a clear 503.
    const failed = await running;
    expect(failed.status).toBe(503);
    expect(((await failed.json()) as { message: string }).message).toMatch(
      /^Model host unavailable: the model host stopped while this job ran/,
    );
    // New work is refused while it is down.
    const refused = await post({ mode: 'sd15-fast', prompt: 'while down' });
    expect(refused.status).toBe(503);
    await refused.arrayBuffer();

    // Nothing queued is lost.
    const replies = await Promise.all(queued);
    for (const [i, reply] of replies.entries()) {
      expect(reply.status).toBe(200);
      expect(reply.headers.get('x-mode')).toBe(queuedModes[i]);
      await reply.arrayBuffer();
    }
    await gateway.logged('restarting the model host');
    await gateway.logged(
      /model host \S+ back: registry re-synced, mode 'sd15-detail' active; resuming 3 queued job\(s\)/,
    );
    const logs = gateway.logs();
    const newPids = [...logs.matchAll(/model host started \(pid (\d+)\)/g)].map((match) => Number(match[1]));
    expect(newPids.at(-1)).not.toBe(pid);
    expect((await fetch(`${gateway.url}/ready`)).status).toBe(200);
    expect(await status()).toMatchObject({ current_mode: 'sd15-fast', queue_size: 0 });
  });
});

describe('a model host at SIDECAR_ADDR that stops serving', () => {
  let modelHost: ModelHost;
  let gateway: Gateway;

  beforeAll(async () => {
    modelHost = startModelHost();
    // A short grace: at the end the gateway cancels the job the stopping model host still runs.
    gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      SIDECAR_ADDR: modelHost.addr,
      SHUTDOWN_GRACE_MS: '1000',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await modelHost?.stop();
  });

  function post(body: unknown): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  it('gets new work refused with 503 at once instead of queued, while its running job goes on', async () => {
    const running = post({ ...LONG, mode: 'sd15-detail' });
    // Under way on the model host (a denoising step done), not only sent: a draining model host cancels a call it
    // has not begun, and that loss would be noticed through the job instead of the health check.
    await waitFor(
      async () => {
        const { jobs } = (await (await fetch(`${gateway.url}/api/jobs?state=running`)).json()) as {
          jobs: { mode: string; progress: unknown }[];
        };
        return jobs.some((job) => job.mode === 'sd15-detail' && job.progress !== null);
      },
      { what: 'the long generation to start', context: gateway.logs },
    );
    // Draining: it answers NOT_SERVING and lets its running call go on for its grace (30 s by default). The
    // gateway notices by itself (no job failed), so new work is refused rather than queued behind the drain.
    modelHost.process.kill('SIGTERM');
    await waitFor(() => gateway.logs().includes('model host lost (its health check says it is not serving)'), {
      what: 'the gateway to notice the model host stopped serving',
      context: gateway.logs,
    });
    const refused = await post({ prompt: 'while it drains' });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({
      error: 'model_host_unavailable',
      message: expect.stringContaining('its health check says it is not serving') as unknown,
    });
    expect((await fetch(`${gateway.url}/ready`)).status).toBe(503);
    // The stop ends the running job within SHUTDOWN_GRACE_MS, whatever the model host does.
    expect(await gateway.stop()).toBe(0);
    expect((await running).status).toBe(503);
  });
});
