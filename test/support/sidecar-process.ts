import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ROOT, SIDECAR_PYTHON } from './demo-models';

export interface Sidecar {
  /** For the gateway's SIDECAR_ADDR. */
  addr: string;
  process: ChildProcess;
  logs: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts one real sidecar that several gateways use in turn (SIDECAR_ADDR), so that a test file can start a
 * fresh gateway per test without paying for a sidecar start each time. The gateways wait for it to serve.
 */
export function startSidecar(): Sidecar {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-sidecar-'));
  const addr = `unix:${join(dir, 'modelhost.sock')}`;
  const child = spawn(SIDECAR_PYTHON, ['-m', 'modelhost', 'serve', '--listen', addr, '--exit-with-parent'], {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  return {
    addr,
    process: child,
    logs: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
