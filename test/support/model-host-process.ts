import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ROOT, SIDECAR_PYTHON } from './demo-models';
import { E2E_ENV } from './gateway-process';

export interface ModelHost {
  /** For the gateway's SIDECAR_ADDR. */
  addr: string;
  process: ChildProcess;
  logs: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts one real model host that several gateways use in turn (SIDECAR_ADDR), so that a test file can start a
 * fresh gateway per test without paying for a model host start each time. The gateways wait for it to serve.
 * It listens on a unix socket in a private temporary folder: nothing to pick, nothing another process can take.
 */
export function startModelHost(): ModelHost {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-sidecar-'));
  const addr = `unix:${join(dir, 'modelhost.sock')}`;
  const args = ['-m', 'modelhost', 'serve', '--listen', addr, '--exit-with-parent', '--device', E2E_ENV.SIDECAR_DEVICE];
  const child = spawn(SIDECAR_PYTHON, args, {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: E2E_ENV.HF_HUB_OFFLINE },
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
