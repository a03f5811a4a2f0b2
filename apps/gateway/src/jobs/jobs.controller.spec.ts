import { get as httpGet, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import request from 'supertest';

import { createTestApp, type TestApp } from '../../testing/test-app.js';
import { waitFor } from '../../testing/wait-for.js';

interface SseEvent {
  readonly type: string;
  readonly data: Record<string, unknown>;
}

/** Reads a whole event stream (it must end by itself); comment lines are counted apart. */
function readEvents(
  server: Server,
  path: string,
  onComment: () => void = () => undefined,
): Promise<{ events: SseEvent[]; comments: number; type: string }> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path }, (response: IncomingMessage) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
        if (chunk.includes(': heartbeat')) onComment();
      });
      response.on('end', () => {
        const blocks = text.split('\n\n').filter((block) => block !== '');
        const events = blocks
          .filter((block) => block.startsWith('event: '))
          .map((block) => {
            const [eventLine, dataLine] = block.split('\n') as [string, string];
            return {
              type: eventLine.slice('event: '.length),
              data: JSON.parse(dataLine.slice('data: '.length)) as Record<string, unknown>,
            };
          });
        resolve({
          events,
          comments: blocks.filter((block) => block.startsWith(':')).length,
          type: response.headers['content-type'] ?? '',
        });
      });
    }).on('error', reject);
  });
}

/** A JSON reply's body, typed for property access. */
function body(response: { body: unknown }): Record<string, unknown> {
  return response.body as Record<string, unknown>;
}

describe('the job API', () => {
  let t: TestApp;
  let server: Server;

  beforeEach(async () => {
    t = await createTestApp({ JOB_EVENTS_HEARTBEAT_MS: '10' });
    server = t.app.getHttpServer() as Server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  afterEach(() => t.close());

  it('queues a job (202, Location), runs it, and serves its record and image', async () => {
    const posted = await request(server)
      .post('/api/jobs')
      .send({ prompt: 'a cat', mode: 'plain', num_inference_steps: 3, seed: 5 })
      .expect(202);
    const id = (posted.body as { id: string }).id;
    expect(posted.headers['location']).toBe(`/api/jobs/${id}`);
    expect(posted.body).toMatchObject({ kind: 'generation', mode: 'plain', seed: 5 });
    await waitFor(async () => body(await request(server).get(`/api/jobs/${id}`)).state === 'completed', {
      what: 'the job to complete',
    });
    const record = (await request(server).get(`/api/jobs/${id}`).expect(200)).body as Record<string, unknown>;
    expect(record).toMatchObject({
      state: 'completed',
      position: null,
      progress: { step: 3, total_steps: 3 },
      switch: { from_mode: 'sdxl-general', to_mode: 'plain', source: 'disk' },
      error: null,
    });
    const image = await request(server).get(`/api/jobs/${id}/image`).expect(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.headers).toMatchObject({ 'x-mode': 'plain', 'x-seed': '5', 'x-superres': 'false' });
    expect(image.body).toEqual(Buffer.from('png:a cat'));

    const replay = await readEvents(server, `/api/jobs/${id}/events`);
    expect(replay.type).toBe('text/event-stream; charset=utf-8');
    expect(replay.events.map((event) => event.type)).toEqual(['completed']);
  });

  it('streams state, then one progress per step, then exactly one completed, and ends', async () => {
    let release!: () => void;
    t.modelHost.holdLoad = new Promise<void>((resolve) => (release = resolve));
    const posted = await request(server).post('/api/jobs').send({ prompt: 'a', mode: 'plain', num_inference_steps: 4 });
    const id = (posted.body as { id: string }).id;
    // The held load keeps the stream idle until a heartbeat has arrived.
    const { events, comments } = await readEvents(server, `/api/jobs/${id}/events`, release);
    const types = events.map((event) => event.type);
    expect(types[0]).toBe('state');
    expect(types.filter((type) => type === 'progress')).toHaveLength(4);
    expect(types.at(-1)).toBe('completed');
    expect(types.filter((type) => ['completed', 'failed', 'cancelled'].includes(type))).toHaveLength(1);
    expect(events.find((event) => event.type === 'progress')?.data).toEqual({ id, step: 1, total_steps: 4 });
    expect(comments).toBeGreaterThan(0);
  });

  it('cancels a queued job at once and a running one; 409 for the image of an unfinished job and a second cancel', async () => {
    let release!: () => void;
    t.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    const post = async (prompt: string): Promise<string> =>
      ((await request(server).post('/api/jobs').send({ prompt })).body as { id: string }).id;
    const running = await post('one');
    const queued = await post('two');
    const last = await post('three');
    await waitFor(() => t.modelHost.generations.length === 1, { what: 'the first generation' });
    expect((await request(server).get(`/api/jobs/${last}`)).body).toMatchObject({ state: 'queued', position: 2 });
    expect(body(await request(server).get(`/api/jobs/${queued}/image`).expect(409)).error).toBe('job_state_conflict');
    expect(body(await request(server).delete(`/api/jobs/${queued}`).expect(200)).state).toBe('cancelled');
    expect(body(await request(server).get(`/api/jobs/${last}`)).position).toBe(1);
    await request(server).delete(`/api/jobs/${queued}`).expect(409);
    await request(server).delete(`/api/jobs/${running}`).expect(200);
    await waitFor(async () => body(await request(server).get(`/api/jobs/${running}`)).state === 'cancelled', {
      what: 'the running job to end cancelled',
    });
    release();
    await waitFor(async () => body(await request(server).get(`/api/jobs/${last}`)).state === 'completed', {
      what: 'the last job to complete',
    });
    expect(t.modelHost.generations.map((generation) => generation.prompt)).toEqual(['one', 'three']);
    const cancelled = (await request(server).get('/api/jobs?state=cancelled').expect(200)).body as {
      jobs: { id: string }[];
    };
    expect(cancelled.jobs.map((job) => job.id)).toEqual([queued, running]);
  });

  it('answers 404 for an unknown job and 400 for a bad list query', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const path of ['', '/image', '/events']) {
      expect(body(await request(server).get(`/api/jobs/${unknown}${path}`).expect(404)).error).toBe('job_not_found');
    }
    await request(server).delete(`/api/jobs/${unknown}`).expect(404);
    for (const limit of ['1e2', '0x10', '0b11', '2.0', '']) {
      const loose = await request(server).get(`/api/jobs?limit=${limit}`).expect(400);
      expect(body(loose).message).toContain('limit: must be an integer');
    }
    const bad = await request(server).get('/api/jobs?limit=1000&state=done').expect(400);
    expect(body(bad).message).toContain('limit: must be at most 100');
    expect(body(bad).message).toContain('state: must be one of');
  });
});

/** Admin work is admin's (README "API keys"): what a plain key may list and cancel. */
describe('the job API with API_KEY and ADMIN_API_KEY', () => {
  let t: TestApp;
  let server: Server;
  const as = (key: string) => ({
    get: (path: string) => request(server).get(path).set('X-API-Key', key),
    post: (path: string) => request(server).post(path).set('X-API-Key', key),
    delete: (path: string) => request(server).delete(path).set('X-API-Key', key),
  });
  const ids = (response: request.Response): string[] =>
    (response.body as { jobs: { id: string }[] }).jobs.map((j) => j.id);

  beforeEach(async () => {
    t = await createTestApp({ API_KEY: 'k-one,k-two', ADMIN_API_KEY: 'k-admin' });
    server = t.app.getHttpServer() as Server;
    await waitFor(() => t.modelHost.calls.includes('load sdxl-general'), { what: 'the default mode to load' });
  });

  afterEach(() => t.close());

  it("lists and cancels an admin's queued unload only with an admin key, and a key's generation only with it", async () => {
    let release!: () => void;
    t.modelHost.hold = new Promise<void>((resolve) => (release = resolve));
    const running = body(await as('k-one').post('/api/jobs').send({ prompt: 'one' }).expect(202)).id as string;
    await waitFor(() => t.modelHost.generations.length === 1, { what: 'the first generation to run' });
    const mine = body(await as('k-one').post('/api/jobs').send({ prompt: 'two' }).expect(202)).id as string;
    const unload = as('k-admin').post('/api/models/unload').send({ all: true });
    const unloadDone = unload.then((response) => response);
    const unloadId = await waitFor(
      async () => ids(await as('k-admin').get('/api/jobs?state=queued')).find((id) => id !== mine),
      { what: 'the unload to be queued' },
    );

    expect(ids(await as('k-one').get('/api/jobs').expect(200))).toEqual([mine, running]);
    expect(ids(await as('k-two').get('/api/jobs').expect(200))).toEqual([]);
    expect(ids(await as('k-admin').get('/api/jobs').expect(200))).toEqual(
      expect.arrayContaining([unloadId, mine, running]),
    );

    const refused = await as('k-one').delete(`/api/jobs/${unloadId}`).expect(403);
    expect(body(refused)).toEqual({
      error: 'forbidden',
      message: `job '${unloadId}' is the server's or an admin's work: only an admin key (ADMIN_API_KEY) may cancel it`,
      statusCode: 403,
    });
    expect(body(await as('k-two').delete(`/api/jobs/${mine}`).expect(403)).message).toContain(
      'queued with another key',
    );
    expect(body(await as('k-one').delete(`/api/jobs/${mine}`).expect(200)).state).toBe('cancelled');
    expect(body(await as('k-admin').delete(`/api/jobs/${unloadId}`).expect(200)).state).toBe('cancelled');
    expect((await unloadDone).status).toBe(503);
    release();
  });
});
