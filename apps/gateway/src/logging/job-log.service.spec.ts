import { JobEvents } from '../queue/job.events.js';
import type { JobSnapshot } from '../queue/job-record.types.js';
import { JOB_FINISHED_MESSAGE, JobLogService, type JobLogFields, type JobLogLevel } from './job-log.service.js';

const record = (extra: Partial<JobSnapshot>): JobSnapshot => ({
  id: 'j1',
  kind: 'generation',
  mode: 'fast',
  state: 'completed',
  progress: null,
  seed: 1,
  created_ms: Date.UTC(2026, 11, 2),
  started_ms: null,
  finished_ms: null,
  queue_ms: 12,
  switch_ms: null,
  generate_ms: null,
  switch: null,
  error: null,
  host: null,
  owner: null,
  ...extra,
});

describe('JobLogService', () => {
  let events: JobEvents;
  let lines: { level: JobLogLevel; fields: JobLogFields; message: string }[];
  let service: JobLogService;

  beforeEach(() => {
    events = new JobEvents();
    lines = [];
    service = new JobLogService(
      (listener, types) => events.bus.subscribe(listener, types),
      (level, fields, message) => lines.push({ level, fields, message }),
    );
  });

  it('writes one line per finished job with its mode, phases and outcome, and none for other events', () => {
    const job = record({
      switch: { from_mode: 'slow', to_mode: 'fast', source: 'shared-base', prefetched: false },
      switch_ms: 340,
      generate_ms: 900,
    });
    events.emit({ type: 'queued', job: record({ state: 'queued' }) });
    events.emit({ type: 'started', job: record({ state: 'running' }) });
    events.emit({ type: 'progress', job: record({ state: 'running' }), step: 1, total_steps: 2 });
    events.emit({ type: 'completed', job });
    expect(lines).toEqual([
      {
        level: 'info',
        message: JOB_FINISHED_MESSAGE,
        fields: {
          context: 'Jobs',
          job_id: 'j1',
          kind: 'generation',
          mode: 'fast',
          outcome: 'completed',
          queue_ms: 12,
          switch_ms: 340,
          switch_source: 'shared-base',
          switch_from: 'slow',
          switch_prefetched: false,
          generate_ms: 900,
          error: null,
        },
      },
    ]);
  });

  it('writes a failed job as a warning with its error code, and a cancelled one as info', () => {
    const error = { error: 'out_of_memory', message: 'no room', statusCode: 507 };
    events.emit({ type: 'failed', job: record({ id: 'f', state: 'failed', error }) });
    const cancelled = { error: 'cancelled', message: 'cancelled', statusCode: 409 };
    events.emit({ type: 'cancelled', job: record({ id: 'c', kind: 'custom', mode: null, error: cancelled }) });
    expect(lines.map((line) => [line.level, line.fields.job_id, line.fields.outcome, line.fields.error])).toEqual([
      ['warn', 'f', 'failed', 'out_of_memory'],
      ['info', 'c', 'cancelled', 'cancelled'],
    ]);
    expect(lines[1].fields).toMatchObject({ kind: 'custom', mode: null, switch_source: null, generate_ms: null });
  });

  it('stops when destroyed', () => {
    service.onModuleDestroy();
    events.emit({ type: 'completed', job: record({}) });
    expect(lines).toEqual([]);
  });
});
