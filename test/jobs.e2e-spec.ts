import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { openEventStream, type StreamEvent } from './support/event-stream';
import { Gateway, pngSize, startGateway } from './support/gateway-process';
import { waitFor } from './support/wait-for';

interface Job {
  id: string;
  mode: string;
  state: string;
  position: number | null;
  progress: { step: number; total_steps: number } | null;
  started_at: string | null;
  finished_at: string | null;
  queue_ms: number | null;
  generate_ms: number | null;
  switch: { from_mode: string | null; to_mode: string; source: string } | null;
  error: { error: string; statusCode: number } | null;
}

const FINAL = ['completed', 'failed', 'cancelled'];
/** The cancel acceptance's running job: 200 steps (the API allows up to 1000). */
const LONG_STEPS = 200;

describe('the job API on the real model host and the demo models', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway({ MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0' });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  async function post(body: object): Promise<{ status: number; location: string | null; job: Job }> {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, location: response.headers.get('location'), job: (await response.json()) as Job };
  }

  async function get(id: string): Promise<Job> {
    return (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as Job;
  }

  it('streams each step of a job, ends it once, cancels a running and a queued job, and runs the next', async () => {
    // The long job (the 200 steps) runs first and holds the device, so both streams below connect before
    // their jobs start.
    const long = await post({ prompt: 'a long job', num_inference_steps: LONG_STEPS });
    const six = await post({ prompt: 'a lighthouse', num_inference_steps: 6, seed: 11 });
    const dropped = await post({ prompt: 'never runs', num_inference_steps: 6 });
    expect(long.status).toBe(202);
    expect(six.status).toBe(202);
    expect(six.location).toBe(`/api/jobs/${six.job.id}`);
    expect(six.job.state).toBe('queued');

    const longEvents = await openEventStream(`${gateway.url}/api/jobs/${long.job.id}/events`);
    const sixEvents = await openEventStream(`${gateway.url}/api/jobs/${six.job.id}/events`);
    await longEvents.next((event) => event.type === 'progress');

    const deleted = await fetch(`${gateway.url}/api/jobs/${dropped.job.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(((await deleted.json()) as Job).state).toBe('cancelled');
    expect((await fetch(`${gateway.url}/api/jobs/${long.job.id}`, { method: 'DELETE' })).status).toBe(200);

    const longEnded = await longEvents.ended;
    const longTypes = longEnded.map((event) => event.type);
    expect(longTypes.filter((type) => FINAL.includes(type))).toEqual(['cancelled']);
    expect(longTypes.at(-1)).toBe('cancelled');
    // Cancelled within a denoising step: its progress stopped well before the last step.
    const lastStep = longEnded.filter((event) => event.type === 'progress').at(-1)?.data.step;
    expect(lastStep).toEqual(expect.any(Number));
    expect(lastStep).toBeLessThan(LONG_STEPS);
    const cancelled = await get(long.job.id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.progress?.total_steps).toBe(LONG_STEPS);
    expect(cancelled.progress?.step).toBeLessThan(LONG_STEPS);
    expect(cancelled.error?.error).toBe('cancelled');

    const events: StreamEvent[] = await sixEvents.ended;
    const types = events.map((event) => event.type);
    expect(types[0]).toBe('state');
    expect(events[0]?.data.state).toBe('queued');
    expect(types.filter((type) => type === 'progress').length).toBeGreaterThanOrEqual(6);
    expect(types.filter((type) => FINAL.includes(type))).toEqual(['completed']);
    expect(types.at(-1)).toBe('completed');
    expect(events.filter((event) => event.type === 'progress').map((event) => event.data.step)).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);

    const done = await get(six.job.id);
    expect(done).toMatchObject({ state: 'completed', position: null, progress: { step: 6, total_steps: 6 } });
    expect(done.started_at).not.toBeNull();
    expect(done.finished_at).not.toBeNull();
    expect(done.queue_ms).toEqual(expect.any(Number));
    expect(done.generate_ms).toEqual(expect.any(Number));

    const image = await fetch(`${gateway.url}/api/jobs/${six.job.id}/image`);
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(image.headers.get('x-seed')).toBe('11');
    expect(image.headers.get('x-mode')).toBe(six.job.mode);
    expect(image.headers.get('x-superres')).toBe('false');
    expect(pngSize(Buffer.from(await image.arrayBuffer())).width).toBeGreaterThan(0);

    const never = await get(dropped.job.id);
    expect(never).toMatchObject({ state: 'cancelled', started_at: null, progress: null });

    // A client that connects after the end gets the final event at once, and the stream ends.
    const late = await openEventStream(`${gateway.url}/api/jobs/${six.job.id}/events`);
    expect((await late.ended).map((event) => event.type)).toEqual(['completed']);
  });

  it('answers 409 for the image of a job that did not complete, and 404 for an unknown job', async () => {
    const { job } = await post({ prompt: 'x', num_inference_steps: LONG_STEPS });
    await waitFor(async () => (await get(job.id)).state === 'running', { what: 'the job to start' });
    expect((await fetch(`${gateway.url}/api/jobs/${job.id}/image`)).status).toBe(409);
    await fetch(`${gateway.url}/api/jobs/${job.id}`, { method: 'DELETE' });
    await waitFor(async () => FINAL.includes((await get(job.id)).state), { what: 'the job to end' });
    expect((await fetch(`${gateway.url}/api/jobs/00000000-0000-4000-8000-000000000000`)).status).toBe(404);
  });
});
