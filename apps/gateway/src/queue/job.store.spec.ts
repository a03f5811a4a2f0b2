import { jest } from '@jest/globals';

import { loadConfig } from '../config/app-config.js';
import type { JobEvent } from './job.events.js';
import { JobEvents } from './job.events.js';
import { JobStore } from './job.store.js';

function store(env: Record<string, string> = {}): { jobs: JobStore; seen: JobEvent[] } {
  const events = new JobEvents();
  const seen: JobEvent[] = [];
  events.on((event) => seen.push(event));
  return { jobs: new JobStore(loadConfig(env), events), seen };
}

const image = (bytes: number) => ({ png: Buffer.alloc(bytes), mode: 'a', seed: 1, superres: false });

describe('JobStore', () => {
  afterEach(() => jest.useRealTimers());

  it('mirrors another gateway’s changes: its snapshot replaces this one, once final it stays, quietly on request', () => {
    const elsewhere = store();
    const here = store();
    const { id } = elsewhere.jobs.create('generation', 'a', 7);
    elsewhere.jobs.started(id, 'b/cpu');
    elsewhere.jobs.finish(id, { state: 'completed', generateMs: 5 });
    const [queued, started, completed] = elsewhere.seen;
    here.jobs.mirror(queued, false);
    expect(here.seen).toEqual([]);
    expect(here.jobs.get(id)).toMatchObject({ state: 'queued' });
    here.jobs.mirror(started);
    here.jobs.mirror(completed);
    here.jobs.mirror(started);
    expect(here.seen.map((event) => event.type)).toEqual(['started', 'completed']);
    expect(here.jobs.get(id)).toMatchObject({ state: 'completed', host: 'b/cpu', generate_ms: 5 });
    // This gateway's own late finish does not change it either.
    here.jobs.finish(id, { state: 'failed', error: { error: 'x', message: 'x', statusCode: 500 } });
    expect(here.jobs.snapshot(id)?.state).toBe('completed');
    expect(here.jobs.list({ limit: 5 }).map((job) => job.id)).toEqual([id]);
  });

  it('emits one typed event per change, and a finished record no longer changes', () => {
    const { jobs, seen } = store();
    const { id } = jobs.create('generation', 'a', 7);
    jobs.started(id, 'test/cpu');
    jobs.switching(id, undefined, 'a');
    jobs.switched(id, { from_mode: null, to_mode: 'a', source: 'disk', prefetched: false }, 12);
    jobs.progress(id, 1, 2);
    jobs.progress(id, 2, 2);
    jobs.finish(id, { state: 'completed', generateMs: 30, image: image(4) });
    jobs.progress(id, 3, 2);
    jobs.finish(id, { state: 'failed', error: { error: 'x', message: 'x', statusCode: 500 } });
    expect(seen.map((event) => event.type)).toEqual([
      'queued',
      'started',
      'switching',
      'progress',
      'progress',
      'completed',
    ]);
    expect(jobs.get(id)).toMatchObject({
      state: 'completed',
      mode: 'a',
      seed: 7,
      progress: { step: 2, total_steps: 2 },
      switch: { from_mode: null, to_mode: 'a', source: 'disk' },
      switch_ms: 12,
      generate_ms: 30,
      error: null,
    });
    expect(jobs.image(id)).toMatchObject({ found: 'image' });
  });

  it('hands every listener one frozen snapshot per change, and renders its times as ISO strings when read', () => {
    jest.useFakeTimers({ now: Date.UTC(2026, 11, 2, 1, 2, 3, 4) });
    const { jobs, seen } = store();
    const created = jobs.create('custom', undefined, undefined);
    jest.advanceTimersByTime(5);
    jobs.started(created.id, 'test/cpu');
    jest.advanceTimersByTime(10);
    jobs.finish(created.id, { state: 'completed' });
    expect(created.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(seen[0]?.job).toBe(created);
    expect(seen.every((event) => Object.isFrozen(event.job))).toBe(true);
    // Each change made a new snapshot: the earlier ones still say what was true when they were sent.
    expect(seen.map((event) => [event.job.state, event.job.started_ms, event.job.finished_ms])).toEqual([
      ['queued', null, null],
      ['running', Date.UTC(2026, 11, 2, 1, 2, 3, 9), null],
      ['completed', Date.UTC(2026, 11, 2, 1, 2, 3, 9), Date.UTC(2026, 11, 2, 1, 2, 3, 19)],
    ]);
    expect(jobs.get(created.id)).toEqual({
      id: created.id,
      kind: 'custom',
      mode: null,
      state: 'completed',
      position: null,
      progress: null,
      seed: null,
      created_at: '2026-12-02T01:02:03.004Z',
      started_at: '2026-12-02T01:02:03.009Z',
      finished_at: '2026-12-02T01:02:03.019Z',
      queue_ms: 5,
      switch_ms: null,
      generate_ms: null,
      switch: null,
      error: null,
      host: 'test/cpu',
    });
  });

  it('records the model host a job starts on, and the one it moves to', () => {
    const events = new JobEvents();
    const jobs = new JobStore(loadConfig({}), events);
    const job = jobs.create('generation', 'a', 1);
    expect(jobs.get(job.id)?.host).toBeNull();
    jobs.started(job.id, 'gw/cuda:1');
    expect(jobs.get(job.id)?.host).toBe('gw/cuda:1');
    // A generation run again after its host died names the host that ran it to the end.
    jobs.moved(job.id, 'gw/cuda:0');
    expect(jobs.get(job.id)).toMatchObject({ state: 'running', host: 'gw/cuda:0' });
  });

  it('lists newest first, filtered by state, at most `limit`', () => {
    const { jobs } = store();
    const ids = [1, 2, 3].map(() => jobs.create('custom', undefined, undefined).id);
    jobs.finish(ids[1], { state: 'cancelled', error: { error: 'c', message: 'c', statusCode: 503 } });
    expect(jobs.list({ limit: 10 }).map((job) => job.id)).toEqual([...ids].reverse());
    expect(jobs.list({ limit: 2 }).map((job) => job.id)).toEqual([ids[2], ids[1]]);
    expect(jobs.list({ state: 'cancelled', limit: 10 }).map((job) => job.id)).toEqual([ids[1]]);
  });

  it('keeps finished jobs within JOB_RETENTION_MAX and JOB_RETENTION_MS, and images within JOB_RESULTS_MAX_BYTES', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { jobs } = store({ JOB_RETENTION_MAX: '2', JOB_RETENTION_MS: '60000', JOB_RESULTS_MAX_BYTES: '10' });
    const ids = [1, 2, 3].map(() => {
      const { id } = jobs.create('generation', 'a', 1);
      jobs.finish(id, { state: 'completed', image: image(6) });
      jest.advanceTimersByTime(1);
      return id;
    });
    const [first, second, third] = ids as [string, string, string];
    expect(jobs.get(first)).toBeUndefined();
    expect(jobs.image(first)).toEqual({ found: 'unknown' });
    expect(jobs.image(second)).toEqual({ found: 'expired' });
    expect(jobs.image(third)).toMatchObject({ found: 'image' });
    const waiting = jobs.create('generation', 'a', 1).id;
    jest.advanceTimersByTime(60_001);
    expect(jobs.get(third)).toBeUndefined();
    expect(jobs.get(waiting)?.state).toBe('queued');
  });
});
