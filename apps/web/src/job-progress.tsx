import type { PageJob } from './types';

/** A job's state in words, its progress bar (one step per denoising step) and the switch its turn caused. */
export function JobProgress({ job }: { job: PageJob }) {
  const step = job.progress?.step ?? 0;
  const total = job.progress?.total_steps ?? 0;
  const change = job.switch ?? job.switching;
  return (
    <div class="job-progress">
      <p role="status" class="job-state" data-state={job.state}>
        {job.state}
        {job.state === 'queued' && job.position !== null && ` (position ${job.position})`}
        {job.host && ` on ${job.host}`}
        {total > 0 && ` · step ${step} / ${total}`}
      </p>
      <progress aria-label="Progress" value={step} max={total || 1} data-step={step} data-total={total} />
      {change && (
        <p class="hint switch">
          switch {change.from_mode ?? '(none)'} → {change.to_mode}
          {job.switch && ` (${job.switch.source}, ${job.switch_ms ?? '?'} ms)`}
        </p>
      )}
      {job.error && (
        <p role="alert" class="error">
          {job.error.error}: {job.error.message}
        </p>
      )}
    </div>
  );
}
