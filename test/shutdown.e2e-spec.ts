import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { demoDir, ROOT } from './support/demo-models';
import { E2E_ENV, Gateway, pngSize, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface ErrorReply {
  error: string;
  message: string;
  statusCode: number;
}

/** The model host's pid and private socket folder, from the gateway's log of starting it. */
function modelHostOf(gateway: Gateway): { pid: number; socketDir: string } {
  const logs = gateway.logs();
  const pid = [...logs.matchAll(/model host started \(pid (\d+)\)/g)].at(-1)?.[1];
  const socket = /--listen unix:(\S+)\/modelhost-\d+\.sock/.exec(logs)?.[1];
  if (pid === undefined || socket === undefined) throw new Error(`no model host in the log:\n${logs}`);
  return { pid: Number(pid), socketDir: socket };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The private socket folders the gateways left in `dir` (their TMPDIR). */
function socketDirs(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.startsWith('modelhost-'));
}

/**
 * SIGTERM on the built gateway and the model host it starts, on the demo models: readiness goes first, queued and
 * new work is answered 503 "shutting down", the running job finishes within SHUTDOWN_GRACE_MS (or is cancelled
 * past it), the model host is stopped, nothing is left behind, and the exit code is 0.
 */
describe('stopping the gateway', () => {
  let tmp: string;
  const started: Gateway[] = [];

  beforeEach(() => {
    // The gateway's TMPDIR: its socket folders land here, where nobody else's do.
    tmp = mkdtempSync(join(tmpdir(), 'e2e-shutdown-'));
  });

  afterEach(async () => {
    for (const gateway of started.splice(0)) await gateway.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>): Promise<Gateway> {
    const gateway = await startGateway({
      MODES_FILE: join(demoDir(), 'modes.yaml'),
      MODES_WATCH: '0',
      TMPDIR: tmp,
      ...env,
    });
    started.push(gateway);
    return gateway;
  }

  function post(gateway: Gateway, body: unknown): Promise<Response> {
    return fetch(`${gateway.url}/generate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  async function queueSize(gateway: Gateway): Promise<number> {
    const response = await fetch(`${gateway.url}/api/models/status`);
    return ((await response.json()) as { queue_size: number }).queue_size;
  }

  async function expectShuttingDown(reply: Response, message: string | RegExp): Promise<void> {
    expect(reply.status).toBe(503);
    const body = (await reply.json()) as ErrorReply;
    expect(body.error).toBe('shutting_down');
    if (typeof message === 'string') expect(body.message).toBe(message);
    else expect(body.message).toMatch(message);
  }

  it('turns /ready off at once, answers queued and new work 503, lets the running job finish, exits 0', async () => {
    // A grace far longer than the job: it must finish, not be cancelled.
    const gateway = await start({ SHUTDOWN_GRACE_MS: '600000' });
    const host = modelHostOf(gateway);
    expect(existsSync(host.socketDir)).toBe(true);

    // Seconds of work on the default mode (already loaded): it runs while the checks below are made.
    let runningSettled = false;
    const running = post(gateway, { prompt: 'the running one', num_inference_steps: 60, size: '128x128' });
    void running.finally(() => (runningSettled = true));
    const queued = [post(gateway, { prompt: 'queued 1' }), post(gateway, { prompt: 'queued 2' })];
    await waitFor(async () => (await queueSize(gateway)) === 2, {
      what: 'one job running and two queued',
      intervalMs: 20,
      context: gateway.logs,
    });

    gateway.process.kill('SIGTERM');
    const ready = await waitFor(
      async () => {
        const response = await fetch(`${gateway.url}/ready`);
        return response.status === 503 && response;
      },
      { what: '/ready to answer 503', intervalMs: 10, context: gateway.logs },
    );
    // Readiness went first: the running job had not ended when /ready said 503.
    expect(runningSettled).toBe(false);
    expect(await ready.json()).toEqual({
      error: 'not_ready',
      message: 'Not ready: the server is shutting down',
      statusCode: 503,
    });
    await expectShuttingDown(
      await post(gateway, { prompt: 'too late' }),
      'Shutting down: the server takes no new work',
    );
    for (const reply of await Promise.all(queued)) {
      await expectShuttingDown(reply, 'Shutting down: the server stopped before this job started');
    }

    const finished = await running;
    expect(finished.status).toBe(200);
    expect(pngSize(Buffer.from(await finished.arrayBuffer()))).toEqual({ width: 128, height: 128 });

    expect(await gateway.exited).toBe(0);
    expect(isRunning(host.pid)).toBe(false);
    expect(gateway.logs()).toContain('the model host exited with code 0');
    expect(socketDirs(tmp)).toEqual([]);
  }, 900_000);

  it('cancels the running job once SHUTDOWN_GRACE_MS has passed, and still exits 0 with nothing left', async () => {
    const gateway = await start({ SHUTDOWN_GRACE_MS: '1000' });
    const host = modelHostOf(gateway);
    // Minutes of work if nobody stops it.
    const running = post(gateway, { prompt: 'too long', num_inference_steps: 150, size: '256x256' });
    const queued = post(gateway, { prompt: 'queued' });
    await waitFor(async () => (await queueSize(gateway)) === 1, {
      what: 'one job running and one queued',
      intervalMs: 20,
      context: gateway.logs,
    });

    gateway.process.kill('SIGTERM');
    await expectShuttingDown(await queued, 'Shutting down: the server stopped before this job started');
    await expectShuttingDown(
      await running,
      'Shutting down: the job was cancelled: it did not finish within 1000 ms (SHUTDOWN_GRACE_MS)',
    );
    expect(await gateway.exited).toBe(0);
    expect(isRunning(host.pid)).toBe(false);
    expect(gateway.logs()).toContain('did not finish within 1000 ms (SHUTDOWN_GRACE_MS): cancelling it');
    expect(socketDirs(tmp)).toEqual([]);
  }, 600_000);

  it('removes its socket folder when it cannot start (its port is taken)', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const child = spawn(process.execPath, [join(ROOT, 'dist', 'apps', 'gateway', 'main.js')], {
        cwd: ROOT,
        env: {
          ...process.env,
          ...E2E_ENV,
          MODES_FILE: join(demoDir(), 'modes.yaml'),
          MODES_WATCH: '0',
          TMPDIR: tmp,
          PORT: String(port),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      // 'close', not 'exit': 'exit' can come while the last lines (the EADDRINUSE one) are still in the pipe.
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect(code).toBe(1);
      expect(output).toContain('EADDRINUSE');
      // The folder was made (the model host was being started) and is gone with the process.
      const pid = Number(/model host started \(pid (\d+)\)/.exec(output)?.[1]);
      expect(pid).toBeGreaterThan(0);
      expect(socketDirs(tmp)).toEqual([]);
      await waitFor(() => !isRunning(pid), { what: 'the orphaned model host to exit', context: () => output });
    } finally {
      holder.close();
    }
  }, 300_000);

  it('removes the socket folder a SIGKILLed gateway left behind when the next one starts', async () => {
    const crashed = await start({});
    const host = modelHostOf(crashed);
    crashed.process.kill('SIGKILL');
    expect(await crashed.exited).toBeNull();
    // The model host follows its parent (it asked Linux for a SIGTERM when the parent dies).
    await waitFor(() => !isRunning(host.pid), { what: 'the orphaned model host to exit', context: crashed.logs });
    // Nothing of the killed gateway ran to remove its folder.
    expect(socketDirs(tmp)).toEqual([host.socketDir.split('/').at(-1)]);

    const next = await start({});
    expect(existsSync(host.socketDir)).toBe(false);
    expect(next.logs()).toMatch(new RegExp(`removed modelhost-${crashed.process.pid}-[0-9a-f]{16}, the socket folder`));
    expect(socketDirs(tmp)).toEqual([modelHostOf(next).socketDir.split('/').at(-1)]);
    expect(await next.stop()).toBe(0);
    expect(socketDirs(tmp)).toEqual([]);
  }, 600_000);
});
