import { join } from 'node:path';

import { HAVE_REDIS_SERVER, startRedisServer, type RedisServer } from './support/redis-server';
import { demoDir } from './support/demo-models';
import { openEventStream, type EventStream } from './support/event-stream';
import { Gateway, startGateway } from './support/gateway-process';
import { jobFinished, jobRecord, submitJob, type JobRecord } from './support/jobs';
import { waitFor } from './support/wait-for';

/**
 * Two gateways, each with one CPU model host on the demo models, sharing one queue on a redis-server of the test's
 * own (QUEUE_BACKEND=redis): work posted to one runs on both, every record, event and image is read from either, a
 * gateway killed under a job loses nothing, and Redis going away stops new work (503) until it is back.
 */
(HAVE_REDIS_SERVER ? describe : describe.skip)('two gateways, one Redis queue (QUEUE_BACKEND=redis)', () => {
  let redis: RedisServer;
  let a: Gateway;
  let b: Gateway;
  let eventsOnA: EventStream;
  /** A job's life without its progress steps: a stream that keeps up however many jobs run. */
  const LIFE = 'types=job.queued,job.started,job.completed,job.failed,job.cancelled';

  const env = (id: string): Record<string, string> => ({
    MODES_FILE: join(demoDir(), 'modes.yaml'),
    MODES_WATCH: '0',
    SIDECAR_DEVICES: 'cpu',
    GATEWAY_ID: id,
    QUEUE_BACKEND: 'redis',
    REDIS_URL: redis.url,
    QUEUE_MAX: '100',
    // A dead gateway's job runs elsewhere within seconds (the lock lapses, the stalled check finds it).
    REDIS_LOCK_MS: '2000',
  });

  beforeAll(async () => {
    redis = await startRedisServer();
    [a, b] = await Promise.all([startGateway(env('gw-a')), startGateway(env('gw-b'))]);
    eventsOnA = await openEventStream(`${a.url}/api/events?${LIFE}`);
  }, 300_000);

  afterAll(async () => {
    eventsOnA?.close();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  const logs = (): string => `--- A ---\n${a.logs().slice(-3000)}\n--- B ---\n${b.logs().slice(-3000)}`;

  const finished = (url: string, id: string): Promise<JobRecord> => jobFinished(url, id, logs);

  it('runs 40 jobs posted to A on both gateways; each record, its events and its image read the same from both', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i += 1) {
      ids.push(await submitJob(a.url, { mode: 'sd15-fast', prompt: `job ${i}`, num_inference_steps: 2, seed: i }));
    }
    const done = await Promise.all(ids.map((id) => finished(a.url, id)));
    expect(done.map((job) => job.state)).toEqual(ids.map(() => 'completed'));
    const hosts = done.map((job) => job.host ?? '');
    expect(hosts.filter((host) => host.startsWith('gw-a/')).length).toBeGreaterThan(0);
    expect(hosts.filter((host) => host.startsWith('gw-b/')).length).toBeGreaterThan(0);
    expect(hosts.every((host) => host.startsWith('gw-a/') || host.startsWith('gw-b/'))).toBe(true);
    for (const [i, id] of ids.entries()) {
      const onB = await waitFor(
        async () => (await jobRecord(b.url, id)).state === 'completed' && jobRecord(b.url, id),
        {
          what: `B to see job ${id} completed`,
          context: logs,
        },
      );
      expect(onB).toEqual(done[i]);
      const [fromA, fromB] = await Promise.all([a.url, b.url].map((url) => fetch(`${url}/api/jobs/${id}/image`)));
      expect([fromA.status, fromB.status]).toEqual([200, 200]);
      expect(fromA.headers.get('x-seed')).toBe(String(i));
      expect(Buffer.from(await fromB.arrayBuffer())).toEqual(Buffer.from(await fromA.arrayBuffer()));
      // A finished job's stream is its final event, from either gateway.
      for (const url of [a.url, b.url]) {
        const stream = await openEventStream(`${url}/api/jobs/${id}/events`);
        expect((await stream.ended).map((event) => event.type)).toEqual(['completed']);
      }
    }
    // A's /api/events carried each job's whole life once, whichever gateway ran it.
    for (const id of ids) {
      const types = eventsOnA.events.filter((event) => event.data.id === id);
      expect(types.filter((event) => event.type === 'job.completed')).toHaveLength(1);
      expect(types.map((event) => event.type)).toEqual(expect.arrayContaining(['job.queued', 'job.started']));
    }
  });

  it('lists every gateway’s model hosts in status and /api/vram, from either gateway', async () => {
    for (const [url, path] of [
      [a.url, '/api/models/status'],
      [b.url, '/api/vram'],
    ]) {
      const ids = await waitFor(
        async () => {
          const body = (await (await fetch(`${url}${path}`)).json()) as { hosts: { id: string; state: string }[] };
          const found = body.hosts.map((host) => `${host.id} ${host.state}`).sort();
          return found.length === 2 && found;
        },
        { what: `both gateways' hosts in ${path}`, context: logs },
      );
      expect(ids).toEqual(['gw-a/cpu serving', 'gw-b/cpu serving']);
    }
  });

  it('finishes on A the job B was running when B was killed (SIGKILL), and answers its client once', async () => {
    // Two longer jobs that cannot run as one batch (their steps differ): each gateway's host takes one.
    const generate = (prompt: string, steps: number) =>
      fetch(`${a.url}/generate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ mode: 'sd15-fast', prompt, num_inference_steps: steps, seed: 5 }),
      });
    const events = await openEventStream(`${a.url}/api/events?${LIFE}`);
    const answers = [generate('first', 25), generate('second', 26)];
    const onB = await waitFor(
      () => {
        const started = events.events.find(
          (event) => event.type === 'job.started' && String(event.data.host).startsWith('gw-b/'),
        );
        const id = started?.data.id as string | undefined;
        return id !== undefined && !events.events.some((e) => e.type === 'job.completed' && e.data.id === id) && id;
      },
      { what: 'B to run one of the two jobs', timeoutMs: 120_000, context: logs },
    );
    b.process.kill('SIGKILL');
    await b.exited;
    const responses = await Promise.all(answers);
    expect(responses.map((response) => response.status)).toEqual([200, 200]);
    const pngs = await Promise.all(responses.map(async (response) => Buffer.from(await response.arrayBuffer())));
    expect(pngs.every((png) => png.subarray(1, 4).toString() === 'PNG')).toBe(true);
    const job = await finished(a.url, onB);
    expect(job.state).toBe('completed');
    expect(job.host).toMatch(/^gw-a\//);
    const completions = events.events.filter((event) => event.type === 'job.completed' && event.data.id === onB);
    expect(completions).toHaveLength(1);
    events.close();
  }, 300_000);

  it('refuses new work (503) and says not ready while Redis is away, then takes work again once it is back', async () => {
    await redis.stop();
    await waitFor(async () => (await fetch(`${a.url}/ready`)).status === 503, { what: '/ready 503', context: logs });
    const refused = await fetch(`${a.url}/api/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode: 'sd15-fast', prompt: 'away', num_inference_steps: 2 }),
    });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'queue_unavailable', statusCode: 503 });
    await a.logged('went away: new work is refused (503)');
    await redis.restart();
    await waitFor(async () => (await fetch(`${a.url}/ready`)).status === 200, {
      what: '/ready 200 again',
      timeoutMs: 30_000,
      context: logs,
    });
    const id = await submitJob(a.url, { mode: 'sd15-fast', prompt: 'back', num_inference_steps: 2 });
    expect((await finished(a.url, id)).state).toBe('completed');
  }, 120_000);
});
