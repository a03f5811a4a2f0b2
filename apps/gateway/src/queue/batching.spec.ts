import type { FakeModelHost } from '../../testing/fake-model-host.js';
import { deferred, JobEngineFixture, PARAMS } from '../../testing/job-engine.fixture.js';
import { waitFor } from '../../testing/wait-for.js';
import { JobCancelledError, OutOfMemoryError } from '../errors/domain.errors.js';
import { batchPartners } from './batching.js';
import { CustomJob, GenerationJob, ModeSwitchJob, type Job } from './job.types.js';
import type { JobPayload } from './queue-backend.js';
import type { SchedulableJob } from './scheduler.js';
import { payloadOf as plain } from './job-payload.js';

const payloadOf = (job: Job | undefined): JobPayload | undefined => job && plain(job);

describe('batchPartners', () => {
  const jobs = new Map<string, Job>();
  const plan = (...ids: string[]): SchedulableJob[] =>
    ids.map((id, i) => ({ id, kind: jobs.get(id)?.kind ?? 'custom', mode: 'a', seq: i + 2, submittedAt: 0 }));
  const first = new GenerationJob('a', PARAMS);

  beforeAll(() => {
    jobs.set('same', new GenerationJob('a', { ...PARAMS, prompt: 'a dog', seed: 9, negativePrompt: '' }));
    jobs.set('same2', new GenerationJob('a', { ...PARAMS, prompt: 'a bird', seed: 3 }));
    jobs.set('other-mode', new GenerationJob('b', PARAMS));
    jobs.set('other-size', new GenerationJob('a', { ...PARAMS, width: 128 }));
    jobs.set('other-steps', new GenerationJob('a', { ...PARAMS, steps: 3 }));
    jobs.set('other-sampler', new GenerationJob('a', { ...PARAMS, sampler: 'euler_a' }));
    jobs.set('negative', new GenerationJob('a', { ...PARAMS, negativePrompt: 'blurry' }));
    jobs.set('switch', new ModeSwitchJob('a'));
    jobs.set('custom', new CustomJob({ handler: () => 1, args: [] }));
  });

  it('takes the compatible generations the scheduler runs next, up to MAX_BATCH in all', () => {
    expect(batchPartners(first, plan('same', 'same2'), (id) => payloadOf(jobs.get(id)), 4)).toEqual(['same', 'same2']);
    expect(batchPartners(first, plan('same', 'same2'), (id) => payloadOf(jobs.get(id)), 2)).toEqual(['same']);
    expect(batchPartners(first, plan('same', 'same2'), (id) => payloadOf(jobs.get(id)), 1)).toEqual([]);
  });

  it.each(['other-mode', 'other-size', 'other-steps', 'other-sampler', 'negative', 'switch', 'custom'])(
    'stops at %s: nothing passes a job it would not have passed',
    (barrier) => {
      expect(batchPartners(first, plan('same', barrier, 'same2'), (id) => payloadOf(jobs.get(id)), 8)).toEqual([
        'same',
      ]);
    },
  );

  it('batches no job that is not a generation', () => {
    expect(batchPartners(new ModeSwitchJob('a'), plan('same'), (id) => payloadOf(jobs.get(id)), 8)).toEqual([]);
  });
});

/** The engine with MAX_BATCH: batches of waiting generations, each member its own job (the fake model host). */
describe('WorkerPool batching', () => {
  let f: JobEngineFixture;
  let modelHost: FakeModelHost;

  beforeEach(() => {
    f = new JobEngineFixture();
    ({ modelHost } = f);
  });

  afterEach(() => f.close());

  const generation = (prompt: string, mode = 'a', extra: Partial<typeof PARAMS> = {}): GenerationJob =>
    new GenerationJob(mode, { ...PARAMS, prompt, ...extra });

  it('runs the waiting compatible generations as one call, each with its own result, record and progress', async () => {
    const workers = f.pool(64, { MAX_BATCH: '4' });
    const gate = deferred<void>();
    modelHost.hold = gate.promise;
    const jobs = [
      generation('one'),
      generation('two'),
      generation('three'),
      generation('four'),
      generation('five'),
      generation('six', 'a', { steps: 3 }),
    ].map((job) => workers.submitJob(job));
    gate.resolve();
    const images = await Promise.all(jobs.map((job) => job.result()));
    expect(images.map((image) => image.png.toString())).toEqual(
      ['one', 'two', 'three', 'four', 'five', 'six'].map((prompt) => `png:${prompt}`),
    );
    expect(modelHost.calls.filter((call) => !call.startsWith('load'))).toEqual([
      'generate a one',
      'batch a two|three|four|five',
      'generate a six',
    ]);
    for (const [i, job] of jobs.entries()) {
      const record = workers.store.get(job.id);
      expect(record?.state).toBe('completed');
      expect(record?.progress).toEqual({ step: i === 5 ? 3 : 2, total_steps: i === 5 ? 3 : 2 });
    }
  });

  it('takes no generation past a job of another mode under FIFO', async () => {
    const workers = f.pool(64, { MAX_BATCH: '4', SCHEDULER_MAX_DELAY_MS: '0' });
    const gate = deferred<void>();
    modelHost.hold = gate.promise;
    const jobs = [generation('one'), generation('two'), generation('bee', 'b'), generation('three')].map((job) =>
      workers.submitJob(job),
    );
    gate.resolve();
    await Promise.all(jobs.map((job) => job.result()));
    expect(modelHost.calls.filter((call) => !call.startsWith('load'))).toEqual([
      'generate a one',
      'generate a two',
      'generate b bee',
      'generate a three',
    ]);
  });

  it('ends a cancelled member cancelled at once while the others run on', async () => {
    const workers = f.pool(64, { MAX_BATCH: '4' });
    const first = deferred<void>();
    modelHost.hold = first.promise;
    const running = workers.submitJob(generation('one'));
    await waitFor(() => modelHost.generations.length === 1, { what: 'the first generation to start' });
    const batchGate = deferred<void>();
    modelHost.hold = batchGate.promise;
    const [two, three, four] = ['two', 'three', 'four'].map((prompt) => workers.submitJob(generation(prompt)));
    first.resolve();
    await waitFor(() => modelHost.batches.length === 1, { what: 'the batch to start' });
    three?.cancel();
    await expect(three?.result()).rejects.toBeInstanceOf(JobCancelledError);
    expect(workers.store.get(three?.id ?? '')?.state).toBe('cancelled');
    expect([two, four].map((job) => workers.store.get(job?.id ?? '')?.state)).toEqual(['running', 'running']);
    batchGate.resolve();
    await expect(two?.result()).resolves.toMatchObject({ png: Buffer.from('png:two') });
    await expect(four?.result()).resolves.toMatchObject({ png: Buffer.from('png:four') });
    await expect(running.result()).resolves.toMatchObject({ png: Buffer.from('png:one') });
  });

  it('fails only the member that fails', async () => {
    const workers = f.pool(64, { MAX_BATCH: '4' });
    const gate = deferred<void>();
    modelHost.hold = gate.promise;
    const [one, two, three] = ['one', 'two', 'three'].map((prompt) => workers.submitJob(generation(prompt)));
    await waitFor(() => modelHost.generations.length === 1, { what: 'the first generation to start' });
    modelHost.failGenerateOnce = new OutOfMemoryError('out of memory generating 64x64');
    gate.resolve();
    await expect(one?.result()).resolves.toMatchObject({ png: Buffer.from('png:one') });
    await expect(two?.result()).rejects.toBeInstanceOf(OutOfMemoryError);
    await expect(three?.result()).resolves.toMatchObject({ png: Buffer.from('png:three') });
    expect(workers.store.get(two?.id ?? '')?.state).toBe('failed');
    expect(modelHost.batches.map((batch) => batch.map((params) => params.prompt))).toEqual([['two', 'three']]);
  });
});
