import { useState } from 'preact/hooks';

import { api, ApiError } from './api';
import { formatTime } from './format';
import type { PageJob } from './types';

const RECENT = 24;

/** Waiting and running jobs with their cancel buttons, then the recent ones: results as a gallery. */
export function QueuePanel({ jobs }: { jobs: PageJob[] }) {
  const [error, setError] = useState<string | null>(null);
  // The running ones, then the waiting ones in the order the queue will run them.
  const active = [
    ...jobs.filter((job) => job.state === 'running'),
    ...jobs.filter((job) => job.state === 'queued').sort((a, b) => (a.position ?? Infinity) - (b.position ?? Infinity)),
  ];
  const finished = jobs.filter((job) => !active.includes(job)).slice(0, RECENT);

  const cancel = async (id: string) => {
    setError(null);
    try {
      await api('DELETE', `/api/jobs/${id}`);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };

  return (
    <section class="panel" aria-labelledby="queue-title">
      <h2 id="queue-title">Queue</h2>
      {active.length === 0 ? (
        <p class="hint">Nothing waiting or running.</p>
      ) : (
        <table class="jobs" aria-label="Waiting and running jobs">
          <thead>
            <tr>
              <th>#</th>
              <th>mode</th>
              <th>state</th>
              <th>host</th>
              <th>progress</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {active.map((job) => (
              <tr key={job.id} data-job-id={job.id} data-state={job.state}>
                <td>{job.state === 'queued' ? job.position : '▶'}</td>
                <td>{job.mode ?? job.kind}</td>
                <td>{job.state}</td>
                <td>{job.host ?? ''}</td>
                <td>
                  {job.progress ? (
                    <progress
                      aria-label={`Progress of ${job.id}`}
                      value={job.progress.step}
                      max={job.progress.total_steps}
                    />
                  ) : (
                    ''
                  )}
                </td>
                <td>
                  <button type="button" aria-label={`Cancel job ${job.id}`} onClick={() => void cancel(job.id)}>
                    Cancel
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <h3>Recent</h3>
      <ul class="gallery" aria-label="Recent jobs">
        {finished.map((job) => (
          <li key={job.id} data-job-id={job.id} data-state={job.state}>
            {job.state === 'completed' && job.kind === 'generation' ? (
              <a href={`/api/jobs/${job.id}/image`} target="_blank" rel="noreferrer">
                <img src={`/api/jobs/${job.id}/image`} alt={`Image of job ${job.id}`} loading="lazy" />
              </a>
            ) : (
              <span class="placeholder">{job.kind}</span>
            )}
            <span class="caption">
              {job.mode ?? job.kind} · <span class="state">{job.state}</span>
              {job.finished_at && ` · ${formatTime(job.finished_at)}`}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
