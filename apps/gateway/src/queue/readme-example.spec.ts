// The custom-job example of docs/CUSTOM-JOBS.md, compiled and run here so that it stays true.
// --- README example: begin ---
import { stat } from 'node:fs/promises';

import { Injectable } from '@nestjs/common';

import { CustomJob } from './job.types.js';
import { RUN_TASK_HANDLER, WorkerPool } from './worker-pool.service.js';

@Injectable()
export class ThumbnailJobs {
  constructor(private readonly pool: WorkerPool) {
    // A handler registered by name: jobs that name it are plain data (a name and JSON-like args).
    pool.registerHandler('thumbnail-path', (path: string, width: number) => path.replace(/\.png$/, `.${width}.png`));
  }

  /** A function, like the spec's CustomJob(handler=..., args=...): runs in its turn, one job at a time. */
  async fileSize(path: string): Promise<number> {
    const job = new CustomJob({ handler: async (file: string) => (await stat(file)).size, args: [path] });
    const handle = this.pool.submitJob(job); // QueueFullError (429) at once when QUEUE_MAX jobs wait
    return handle.result(); // the handler's value, or its error
  }

  /** The same through the registered name. */
  thumbnailPath(path: string): Promise<unknown> {
    return this.pool.submitJob(new CustomJob({ handler: 'thumbnail-path', args: [path, 256] })).result();
  }

  /** A Python task of the model host (RunTask), run on its device thread in order with generations. */
  memorySummary(): Promise<unknown> {
    return this.pool.submitJob(new CustomJob({ handler: RUN_TASK_HANDLER, args: ['memory-summary', {}] })).result();
  }
}
// --- README example: end ---

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import type { FakeModelHost } from '../../testing/fake-model-host.js';
import { JobEngineFixture } from '../../testing/job-engine.fixture.js';

describe('the custom jobs of docs/CUSTOM-JOBS.md', () => {
  let pool: WorkerPool;
  let modelHost: FakeModelHost;
  let jobs: ThumbnailJobs;

  let f: JobEngineFixture;

  beforeEach(() => {
    f = new JobEngineFixture();
    modelHost = f.modelHost;
    modelHost.tasks.set('memory-summary', () => ({ device: 'cpu', models: [] }));
    pool = f.pool();
    jobs = new ThumbnailJobs(pool);
  });

  afterEach(() => f.close());

  it('gives the caller the handler result, and its error', async () => {
    await expect(jobs.fileSize(import.meta.filename)).resolves.toBeGreaterThan(0);
    await expect(jobs.fileSize('/no/such/file')).rejects.toThrow('ENOENT');
  });

  it('is the code docs/CUSTOM-JOBS.md shows', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../../../docs/CUSTOM-JOBS.md'), 'utf8');
    const shown = /# Custom jobs[\s\S]*?```ts\n([\s\S]*?)```/.exec(doc)?.[1];
    const own = readFileSync(import.meta.filename, 'utf8');
    const compiled = /\/\/ --- README example: begin ---\n([\s\S]*?)\/\/ --- README example: end ---/.exec(own)?.[1];
    expect(shown).toBeDefined();
    expect(shown).toBe(compiled);
  });

  it('runs a registered handler and a model host task', async () => {
    await expect(jobs.thumbnailPath('/images/cat.png')).resolves.toBe('/images/cat.256.png');
    await expect(jobs.memorySummary()).resolves.toEqual({ device: 'cpu', models: [] });
    expect(modelHost.calls).toEqual(['task memory-summary']);
  });
});
