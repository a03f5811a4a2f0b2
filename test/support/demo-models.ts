import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// npm scripts run from the repository root.
export const ROOT = resolve(process.cwd());
export const SIDECAR_PYTHON = join(ROOT, 'sidecar', '.venv', 'bin', 'python');
const DEMO_DIR_ENV = 'E2E_DEMO_DIR';

/** jest globalSetup: the tiny demo models, made once per run by the real factory. */
export default function makeDemoModels(): void {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-demo-'));
  execFileSync(SIDECAR_PYTHON, ['-m', 'modelhost', 'make-demo-models', dir], {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    stdio: 'inherit',
  });
  process.env[DEMO_DIR_ENV] = dir;
}

export function demoDir(): string {
  const dir = process.env[DEMO_DIR_ENV];
  if (!dir) throw new Error('demo models missing: the e2e globalSetup did not run');
  return dir;
}
