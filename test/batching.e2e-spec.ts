import { join } from 'node:path';

import { demoDir } from './support/demo-models';
import { openEventStream } from './support/event-stream';
import { Gateway, startGateway } from './support/gateway-process';
import { GREY_LEVELS, maxPixelDifference } from './support/image-compare';
import { waitFor } from './support/wait-for';

interface Job {
  id: string;
  state: string;
}

const FINAL = ['completed', 'failed', 'cancelled'];

describe('batching on the real model host and the tiny demo models', () => {
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await startGateway({ MODES_FILE: join(demoDir(), 'modes.yaml'), MODES_WATCH: '0', MAX_BATCH: '4' });
  });

  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  async function post(body: object): Promise<Job> {
    const response = await fetch(`${gateway.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(202);
    return (await response.json()) as Job;
  }

  async function get(id: string): Promise<Job> {
    return (await (await fetch(`${gateway.url}/api/jobs/${id}`)).json()) as Job;
  }

  async function finished(id: string): Promise<Job> {
    return waitFor(
      async () => {
        const job = await get(id);
        return FINAL.includes(job.state) && job;
      },
      { what: `job ${id} to end` },
    );
  }

  async function image(id: string): Promise<Buffer> {
    const response = await fetch(`${gateway.url}/api/jobs/${id}/image`);
    expect(response.status).toBe(200);
    return Buffer.from(await response.arrayBuffer());
  }

  it('runs four queued jobs together: each image is the one it gets alone, and a cancelled one ends alone', async () => {
    // A long job holds the device, so the four queue behind it and are taken together once it ends.
    const long = await post({ prompt: 'holds the device', num_inference_steps: 150 });
    const longEvents = await openEventStream(`${gateway.url}/api/jobs/${long.id}/events`);
    await longEvents.next((event) => event.type === 'progress');
    // Enough steps that the batch is still denoising when the cancel below arrives.
    const request = (seed: number): object => ({
      prompt: `a lighthouse number ${seed}`,
      seed,
      num_inference_steps: 8,
      size: '64x64',
    });
    const members = await Promise.all([1, 2, 3, 4].map((seed) => post(request(seed))));
    const cancelledEvents = await openEventStream(`${gateway.url}/api/jobs/${members[1]?.id}/events`);
    expect((await fetch(`${gateway.url}/api/jobs/${long.id}`, { method: 'DELETE' })).status).toBe(200);

    await cancelledEvents.next((event) => event.type === 'progress');
    // One at a time, only one could be running: these four run in one call.
    expect((await Promise.all(members.map((job) => get(job.id)))).map((job) => job.state)).toEqual([
      'running',
      'running',
      'running',
      'running',
    ]);
    expect((await fetch(`${gateway.url}/api/jobs/${members[1]?.id}`, { method: 'DELETE' })).status).toBe(200);
    const types = (await cancelledEvents.ended).map((event) => event.type);
    expect(types.filter((type) => FINAL.includes(type))).toEqual(['cancelled']);

    const ended = await Promise.all(members.map((job) => finished(job.id)));
    expect(ended.map((job) => job.state)).toEqual(['completed', 'cancelled', 'completed', 'completed']);

    for (const [index, seed] of [
      [0, 1],
      [2, 3],
      [3, 4],
    ] as const) {
      const batched = await image(members[index]?.id ?? '');
      const alone = await post(request(seed));
      expect((await finished(alone.id)).state).toBe('completed');
      expect(maxPixelDifference(batched, await image(alone.id))).toBeLessThanOrEqual(GREY_LEVELS);
    }
  });
});
