import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

import { ROOT } from './demo-models';
import { waitFor } from './wait-for';

export const GATEWAY_MAIN = join(ROOT, 'dist', 'apps', 'gateway', 'main.js');
const READY_TIMEOUT_MS = 180_000;
/**
 * The gateway's start line; with PORT=0 it is the only place the chosen port is told. Colour codes end the URL, and
 * what ends it must be there: a read of the pipe can stop inside the line, and a URL cut short names another port.
 */
// eslint-disable-next-line no-control-regex
export const LISTENING = /gateway listening on (http:\/\/[^\s\x1b"]+)(?=[\s\x1b"])/;

/**
 * What every gateway (and model host) the e2e suite starts gets, so that the suite means the same on any machine:
 * the model host on the CPU even where CUDA is visible (float32, the sizes the tests reason about), no hub.
 */
export const E2E_ENV = { HF_HUB_OFFLINE: '1', SIDECAR_DEVICE: 'cpu' } as const;

export interface Gateway {
  url: string;
  process: ChildProcess;
  logs: () => string;
  /**
   * Resolves once the log holds `text`. A line the gateway wrote before it answered a request can still be in the
   * pipe when the test reads the answer, so a log assertion after a request waits for the line instead of reading
   * the log at one instant. `after` (a length of `logs()` taken earlier) looks only at what came since.
   */
  logged: (text: string | RegExp, after?: number) => Promise<void>;
  /** Resolves to the exit code once the process has exited and its output is all read (whoever stopped it). */
  exited: Promise<number | null>;
  /** SIGTERM (unless it already exited), then its exit code. */
  stop: () => Promise<number | null>;
}

/**
 * Starts the built gateway (which starts its own model host, unless SIDECAR_ADDR names one) on a port the OS picks
 * (PORT=0: the gateway binds it and says which in its start line, so no other process can take it meanwhile), and
 * waits until `waitFor` (/ready unless told; /health when the test needs no model loaded) says 200.
 */
export async function startGateway(
  env: Record<string, string>,
  { waitFor: path = '/ready' }: { waitFor?: '/ready' | '/health' } = {},
): Promise<Gateway> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    cwd: ROOT,
    env: { ...process.env, ...E2E_ENV, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // 'close', not 'exit': 'exit' can come while the last lines are still in the pipe, and tests read the log after.
  const exited = new Promise<number | null>((resolveExit) => child.once('close', (code) => resolveExit(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };

  const alive = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`gateway exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
  };
  try {
    const url = await waitFor(
      () => {
        alive();
        return LISTENING.exec(output)?.[1];
      },
      { what: 'the gateway to say where it listens', timeoutMs: READY_TIMEOUT_MS, context: () => output },
    );
    await waitFor(
      async () => {
        alive();
        try {
          return (await fetch(`${url}${path}`)).status === 200;
        } catch {
          return false;
        }
      },
      { what: `the gateway to answer ${path} with 200`, timeoutMs: READY_TIMEOUT_MS, context: () => output },
    );
    const logged = async (text: string | RegExp, after = 0): Promise<void> => {
      const holds = (): boolean => {
        const since = output.slice(after);
        return typeof text === 'string' ? since.includes(text) : text.test(since);
      };
      await waitFor(holds, {
        what: `the gateway to log ${String(text)}`,
        timeoutMs: 10_000,
        intervalMs: 20,
        context: () => output,
      });
    };
    return { url, process: child, logs: () => output, logged, exited, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Width and height from a PNG's IHDR chunk; throws if the bytes are not a PNG. */
export function pngSize(bytes: Buffer): { width: number; height: number } {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!bytes.subarray(0, 8).equals(signature) || bytes.toString('ascii', 12, 16) !== 'IHDR') {
    throw new Error('not a PNG');
  }
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}
