import { describe, expect, it } from '@jest/globals';

import { QueueFullError } from '../errors/domain.errors.js';
import type { JobEvent } from './job.events.js';
import type { GenerationParams } from './job.types.js';
import type { Awaitable, ClaimContext, ClaimOptions, JobPayload, QueueBackend, QueuedJob } from './queue-backend.js';

/** What a backend under test is made with: the settings the contract varies. */
export interface ContractOptions {
  readonly queueMax: number;
  readonly queueTimeoutMs: number;
  /** SCHEDULER_MAX_DELAY_MS: 0 is strict FIFO. */
  readonly schedulerMaxDelayMs: number;
}

/** A fresh, empty backend (its own records and events); `close` stops whatever it started. */
export type MakeBackend = (
  options: ContractOptions,
) => Awaitable<{ backend: QueueBackend; close?: () => Promise<void> | void }>;

const PARAMS: GenerationParams = {
  prompt: 'p',
  negativePrompt: '',
  width: 64,
  height: 64,
  steps: 2,
  guidanceScale: 1,
  seed: 7,
  superres: false,
};

const generation = (mode: string, params: Partial<GenerationParams> = {}): JobPayload => ({
  kind: 'generation',
  mode,
  params: { ...PARAMS, ...params },
});
const modeSwitch = (mode: string): JobPayload => ({ kind: 'mode-switch', mode });
const custom = (handler: string | null, host?: string): JobPayload => ({
  kind: 'custom',
  handler,
  args: handler === null ? [] : ['x', 1],
  host,
});

const ONE: ClaimOptions = { maxBatch: 1 };

/**
 * What every QueueBackend must do, written once: `queueBackendContract('in memory', make)` in a spec file runs it
 * against one backend (the Redis backend of issue 19 runs the same suite against a real redis-server).
 */
export function queueBackendContract(name: string, make: MakeBackend): void {
  describe(`QueueBackend contract: ${name}`, () => {
    let ids = 0;

    /** Runs `test` against a fresh backend, and closes it whatever happens. */
    const withBackend =
      (options: Partial<ContractOptions>, test: (backend: QueueBackend) => Promise<void>) => async () => {
        const made = await make({ queueMax: 64, queueTimeoutMs: 60_000, schedulerMaxDelayMs: 0, ...options });
        try {
          await test(made.backend);
        } finally {
          await made.backend.close();
          await made.close?.();
        }
      };

    const enqueue = async (backend: QueueBackend, payload: JobPayload, activeMode?: string) => {
      ids += 1;
      const seed = payload.kind === 'generation' ? payload.params.seed : undefined;
      return backend.enqueue({ id: `job-${ids}`, payload, seed, plan: { activeMode, now: Date.now() } });
    };
    const context = (over: Partial<ClaimContext> = {}): ClaimContext => ({
      host: 'h1',
      activeMode: undefined,
      now: Date.now(),
      ...over,
    });
    /** Claims one job at a time until none is left: their ids in the order taken. */
    const drainOrder = async (backend: QueueBackend, over: Partial<ClaimContext> = {}): Promise<string[]> => {
      const order: string[] = [];
      let active = over.activeMode;
      for (;;) {
        const [job] = await backend.claim(context({ ...over, activeMode: active }), ONE);
        if (!job) return order;
        order.push(job.id);
        if (job.mode !== undefined) active = job.mode;
      }
    };

    describe('admission', () => {
      it(
        'admits up to QUEUE_MAX waiting jobs and refuses the next with QueueFullError',
        withBackend({ queueMax: 3 }, async (backend) => {
          const admitted = [];
          for (let i = 0; i < 3; i += 1) admitted.push(await enqueue(backend, custom('h')));
          expect(admitted.map((a) => a.ahead)).toEqual([0, 1, 2]);
          expect(await backend.size()).toBe(3);
          await expect(enqueue(backend, generation('a'))).rejects.toBeInstanceOf(QueueFullError);
          await expect(enqueue(backend, generation('a'))).rejects.toMatchObject({ queueMax: 3 });
          expect(await backend.size()).toBe(3);
          // A claimed job no longer counts.
          await backend.claim(context(), ONE);
          await expect(enqueue(backend, custom('h'))).resolves.toMatchObject({ ahead: 2 });
        }),
      );

      it(
        'gives each job its id, kind, mode, binding, increasing seq and its record',
        withBackend({}, async (backend) => {
          const first = await enqueue(backend, generation('a'));
          const second = await enqueue(backend, custom('h', 'h2'));
          expect(first.job).toMatchObject({ kind: 'generation', mode: 'a', host: undefined });
          expect(second.job).toMatchObject({ kind: 'custom', mode: undefined, host: 'h2' });
          expect(second.job.seq).toBeGreaterThan(first.job.seq);
          expect(backend.records.get(first.job.id)).toMatchObject({ id: first.job.id, state: 'queued', seed: 7 });
          expect(backend.records.snapshot(first.job.id)?.created_ms).toBe(first.job.submittedAt);
        }),
      );
    });

    describe('order', () => {
      it(
        'is first in, first out at SCHEDULER_MAX_DELAY_MS=0, whatever the active mode',
        withBackend({ schedulerMaxDelayMs: 0 }, async (backend) => {
          const jobs = [];
          for (const mode of ['a', 'b', 'a', 'b']) jobs.push((await enqueue(backend, generation(mode))).job.id);
          expect((await backend.plan({ activeMode: 'b', now: Date.now() })).map((j) => j.id)).toEqual(jobs);
          expect(await drainOrder(backend, { activeMode: 'b' })).toEqual(jobs);
        }),
      );

      it(
        'groups generations by the active mode, then the resident ones, and runs a job overdue past the bound',
        withBackend({ schedulerMaxDelayMs: 60_000 }, async (backend) => {
          const a1 = (await enqueue(backend, generation('a'))).job;
          const b1 = (await enqueue(backend, generation('b'))).job;
          const c1 = (await enqueue(backend, generation('c'))).job;
          const b2 = (await enqueue(backend, generation('b'), 'b')).job;
          expect((await backend.plan({ activeMode: 'b', now: Date.now() })).map((j) => j.id)).toEqual([
            b1.id,
            b2.id,
            a1.id,
            c1.id,
          ]);
          // A resident mode goes before a load from disk.
          const [resident] = await backend.claim(
            context({ activeMode: 'x', resident: new Set(['c']), now: a1.submittedAt }),
            ONE,
          );
          expect(resident?.id).toBe(c1.id);
          // The oldest, once it has waited the bound past its turn, goes first whatever is active.
          const [overdue] = await backend.claim(context({ activeMode: 'b', now: a1.submittedAt + 60_000 }), ONE);
          expect(overdue?.id).toBe(a1.id);
          expect(await drainOrder(backend, { activeMode: 'b' })).toEqual([b1.id, b2.id]);
        }),
      );

      it(
        'never passes a barrier: a mode switch or a custom job runs only as the oldest',
        withBackend({ schedulerMaxDelayMs: 60_000 }, async (backend) => {
          const a1 = (await enqueue(backend, generation('a'))).job.id;
          const b1 = (await enqueue(backend, generation('b'))).job.id;
          const toB = (await enqueue(backend, modeSwitch('b'))).job.id;
          const b2 = (await enqueue(backend, generation('b'))).job.id;
          const task = (await enqueue(backend, custom('h'))).job.id;
          const b3 = (await enqueue(backend, generation('b'))).job.id;
          expect(await drainOrder(backend, { activeMode: 'b' })).toEqual([b1, a1, toB, b2, task, b3]);
        }),
      );

      it(
        'leaves a mode to avoid unless it is overdue, and waits rather than take it',
        withBackend({ schedulerMaxDelayMs: 60_000 }, async (backend) => {
          const a1 = (await enqueue(backend, generation('a'))).job;
          const b1 = (await enqueue(backend, generation('b'))).job;
          const avoid = new Set(['a']);
          const [other] = await backend.claim(context({ activeMode: undefined, avoid, now: a1.submittedAt }), ONE);
          expect(other?.id).toBe(b1.id);
          await expect(async () => backend.claim(context({ avoid, now: a1.submittedAt }), ONE)).resolves.toEqual([]);
          const deadline = await backend.nextDeadline(context({ avoid, now: a1.submittedAt }));
          expect(deadline).toBeGreaterThan(0);
          expect(deadline).toBeLessThanOrEqual(60_000);
          const [late] = await backend.claim(context({ avoid, now: a1.submittedAt + 60_000 }), ONE);
          expect(late?.id).toBe(a1.id);
        }),
      );
    });

    describe('claim', () => {
      it(
        'gives a job bound to a host to that host only, and the jobs behind it wait',
        withBackend({}, async (backend) => {
          const bound = (await enqueue(backend, custom('h', 'h2'))).job.id;
          const after = (await enqueue(backend, custom('h'))).job.id;
          await expect(async () => backend.claim(context({ host: 'h1' }), ONE)).resolves.toEqual([]);
          expect((await backend.claim(context({ host: 'h2' }), ONE)).map((j) => j.id)).toEqual([bound]);
          expect((await backend.claim(context({ host: 'h1' }), ONE)).map((j) => j.id)).toEqual([after]);
        }),
      );

      it(
        'takes nothing under onlyIfHeld when the chosen job needs a load; a custom job needs none',
        withBackend({}, async (backend) => {
          const b1 = (await enqueue(backend, generation('b'))).job.id;
          const held = { maxBatch: 1, onlyIfHeld: new Set(['a']) };
          await expect(async () => backend.claim(context({ activeMode: 'a' }), held)).resolves.toEqual([]);
          expect(await backend.size()).toBe(1);
          expect(
            (await backend.claim(context({ activeMode: 'b' }), { ...held, onlyIfHeld: new Set(['b']) }))[0]?.id,
          ).toBe(b1);
          const task = (await enqueue(backend, custom('h'))).job.id;
          expect((await backend.claim(context(), held))[0]?.id).toBe(task);
        }),
      );

      it(
        'takes compatible generations next in the plan as one batch, up to maxBatch, and stops at the first that differs',
        withBackend({}, async (backend) => {
          const same = [];
          for (let i = 0; i < 3; i += 1)
            same.push((await enqueue(backend, generation('a', { prompt: `p${i}` }))).job.id);
          const other = (await enqueue(backend, generation('a', { steps: 9 }))).job.id;
          const last = (await enqueue(backend, generation('a'))).job.id;
          expect((await backend.claim(context({ activeMode: 'a' }), { maxBatch: 2 })).map((j) => j.id)).toEqual(
            same.slice(0, 2),
          );
          expect((await backend.claim(context({ activeMode: 'a' }), { maxBatch: 8 })).map((j) => j.id)).toEqual([
            same[2],
          ]);
          expect(await drainOrder(backend, { activeMode: 'a' })).toEqual([other, last]);
        }),
      );

      it(
        'hands each job to one claim only, also when claims overlap',
        withBackend({}, async (backend) => {
          const all = [];
          for (let i = 0; i < 10; i += 1) all.push((await enqueue(backend, custom('h'))).job.id);
          const claims = await Promise.all(
            Array.from({ length: 12 }, (_, i) => Promise.resolve(backend.claim(context({ host: `h${i % 3}` }), ONE))),
          );
          const taken = claims.flat().map((job) => job.id);
          expect(taken.sort()).toEqual([...all].sort());
          expect(await backend.size()).toBe(0);
        }),
      );
    });

    describe('cancel', () => {
      it(
        'removes a waiting job once; a claimed one is no longer the backend’s to cancel',
        withBackend({}, async (backend) => {
          const first = (await enqueue(backend, custom('h'))).job.id;
          const second = (await enqueue(backend, custom('h'))).job.id;
          expect((await backend.cancel(second))?.id).toBe(second);
          await expect(async () => backend.cancel(second)).resolves.toBeUndefined();
          expect(await backend.size()).toBe(1);
          await backend.claim(context(), ONE);
          await expect(async () => backend.cancel(first)).resolves.toBeUndefined();
          await expect(async () => backend.cancel('no-such-job')).resolves.toBeUndefined();
        }),
      );
    });

    describe('timeouts', () => {
      it(
        'expires waiting jobs past QUEUE_TIMEOUT_MS, oldest first, and says when the next one runs out',
        withBackend({ queueTimeoutMs: 1000 }, async (backend) => {
          await expect(async () => backend.nextExpiry()).resolves.toBeUndefined();
          const first = (await enqueue(backend, generation('a'))).job;
          const second = (await enqueue(backend, custom('h'))).job;
          const third = (await enqueue(backend, generation('b'))).job;
          expect(await backend.nextExpiry()).toBe(first.submittedAt + 1000);
          await expect(async () => backend.expire(first.submittedAt + 999)).resolves.toEqual([]);
          await backend.cancel(second.id);
          const expired = await backend.expire(third.submittedAt + 1000);
          expect(expired.map((job) => job.id)).toEqual([first.id, third.id]);
          expect(await backend.size()).toBe(0);
          await expect(async () => backend.nextExpiry()).resolves.toBeUndefined();
        }),
      );
    });

    describe('plan', () => {
      it(
        'gives positions and "N pending": a generation its place in the plan, a barrier every job before it',
        withBackend({ schedulerMaxDelayMs: 60_000 }, async (backend) => {
          await enqueue(backend, generation('a'));
          await enqueue(backend, generation('b'));
          const a2 = await enqueue(backend, generation('a'), 'a');
          expect(a2.ahead).toBe(1);
          const toB = await enqueue(backend, modeSwitch('b'), 'a');
          expect(toB.ahead).toBe(3);
          expect(await backend.waitingFor('h1')).toBe(0);
          await enqueue(backend, custom('h', 'h1'));
          expect(await backend.waitingFor('h1')).toBe(1);
          expect((await backend.oldestOf('a'))?.id).toBe(
            (await backend.plan({ activeMode: 'a', now: Date.now() }))[0]?.id,
          );
          await expect(async () => backend.oldestOf('zzz')).resolves.toBeUndefined();
        }),
      );
    });

    describe('records', () => {
      it(
        'keeps every job a record and every change an event',
        withBackend({}, async (backend) => {
          const seen: JobEvent[] = [];
          const off = backend.records.events.on((event) => seen.push(event));
          const { job } = await enqueue(backend, generation('a'));
          await backend.claim(context({ activeMode: 'a' }), ONE);
          backend.records.started(job.id, 'h1');
          backend.records.progress(job.id, 1, 2);
          backend.records.finish(job.id, { state: 'completed', generateMs: 5 });
          off();
          expect(seen.map((event) => event.type)).toEqual(['queued', 'started', 'progress', 'completed']);
          expect(backend.records.get(job.id)).toMatchObject({ state: 'completed', host: 'h1', generate_ms: 5 });
          expect(backend.records.list({ limit: 10 }).map((record) => record.id)).toContain(job.id);
        }),
      );
    });

    describe('plain data', () => {
      it(
        'carries every job as JSON-safe data; a function-handler job is `handler: null` with no arguments',
        withBackend({}, async (backend) => {
          await enqueue(backend, generation('a'));
          await enqueue(backend, modeSwitch('b'));
          await enqueue(backend, custom('named', 'h1'));
          const local = (await enqueue(backend, custom(null))).job;
          expect(local.payload).toEqual({ kind: 'custom', handler: null, args: [], host: undefined });
          const plan = await backend.plan({ activeMode: undefined, now: Date.now() });
          expect(plan).toHaveLength(4);
          for (const job of plan) {
            const copy = JSON.parse(JSON.stringify(job)) as QueuedJob;
            expect(copy).toEqual(JSON.parse(JSON.stringify({ ...job })));
            expect(Object.values(job.payload).some((value) => typeof value === 'function')).toBe(false);
          }
        }),
      );
    });

    describe('close', () => {
      it(
        'gives back the waiting jobs this gateway must answer, and leaves none waiting for them',
        withBackend({}, async (backend) => {
          const local = (await enqueue(backend, custom(null))).job.id;
          await enqueue(backend, generation('a'));
          const answered = (await backend.close()).map((job) => job.id);
          expect(answered).toContain(local);
        }),
      );
    });
  });
}
