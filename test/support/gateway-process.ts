import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { ROOT } from './demo-models';

const GATEWAY_MAIN = join(ROOT, 'dist', 'apps', 'gateway', 'main.js');
const READY_TIMEOUT_MS = 180_000;

export interface Gateway {
  url: string;
  process: ChildProcess;
  logs: () => string;
  stop: () => Promise<number | null>;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/**
 * Starts the built gateway (which starts its own sidecar, unless SIDECAR_ADDR names one) and waits until
 * `waitFor` (/ready unless told; /health when the test needs no model loaded) says 200.
 */
export async function startGateway(
  env: Record<string, string>,
  { waitFor = '/ready' }: { waitFor?: '/ready' | '/health' } = {},
): Promise<Gateway> {
  // An explicit PORT is kept (a test that must use the spec's 4200); else any free one.
  const port = env.PORT === undefined ? await freePort() : Number(env.PORT);
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: '1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));

  const gateway: Gateway = {
    url,
    process: child,
    logs: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with ${child.exitCode} before it was ready:\n${output}`);
    }
    try {
      const response = await fetch(`${url}${waitFor}`);
      if (response.status === 200) return gateway;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await gateway.stop();
  throw new Error(`gateway not answering ${waitFor} after ${READY_TIMEOUT_MS} ms:\n${output}`);
}

/** Width and height from a PNG's IHDR chunk; throws if the bytes are not a PNG. */
export function pngSize(bytes: Buffer): { width: number; height: number } {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!bytes.subarray(0, 8).equals(signature) || bytes.toString('ascii', 12, 16) !== 'IHDR') {
    throw new Error('not a PNG');
  }
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}
