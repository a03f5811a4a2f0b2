import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { demoDir, ROOT } from './support/demo-models';
import { E2E_ENV } from './support/gateway-process';

interface Outcome {
  value?: unknown;
  error?: string;
  message?: string;
}

/** The spec's "Example 2" in its TypeScript form, on the real pool and the real model host. */
describe('custom jobs on the real WorkerPool and model host', () => {
  let results: Record<string, Outcome>;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'custom-jobs-'));
    const resultsFile = join(dir, 'results.json');
    await promisify(execFile)(process.execPath, [join(ROOT, 'test', 'fixtures', 'custom-jobs.mjs')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...E2E_ENV,
        MODES_FILE: join(demoDir(), 'modes.yaml'),
        MODES_WATCH: '0',
        RESULTS_FILE: resultsFile,
      },
      timeout: 150_000,
    });
    results = JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, Outcome>;
    rmSync(dir, { recursive: true, force: true });
  }, 160_000);

  it("returns a function handler's value", () => {
    expect(results.fn).toEqual({ value: 42 });
  });

  it("rejects with a handler's error, and the pool carries on", () => {
    expect(results.fnError).toEqual({ error: 'Error', message: 'boom from a handler' });
    expect(results.named).toEqual({ value: 5 });
  });

  it("returns a model host task's JSON result", () => {
    expect(results.echo).toEqual({ value: { hello: 'model host' } });
    const memory = results.memory.value as { device: string; models: { key: string }[] };
    expect(memory.device).toBe('cpu');
    expect(memory.models.map((m) => m.key)).toEqual([expect.stringMatching(/^sdxl-general-[0-9a-f]{12}$/)]);
  });

  it('rejects an unknown model host task with UnknownTaskError', () => {
    expect(results.unknownTask.error).toBe('UnknownTaskError');
    expect(results.unknownTask.message).toContain('no-such-task');
  });
});
