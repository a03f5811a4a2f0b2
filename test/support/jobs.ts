import { waitFor } from './wait-for';

/** A job record as `GET /api/jobs/:id` gives it: the keys the tests read. */
export interface JobRecord {
  id: string;
  mode: string;
  state: string;
  host: string | null;
  switch: { source: string } | null;
  progress: { step: number } | null;
}

/** POSTs a job to the gateway at `url` (202 expected) and returns its id. `headers`: an API key. */
export async function submitJob(
  url: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await fetch(`${url}/api/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as JobRecord).id;
}

export async function jobRecord(url: string, id: string): Promise<JobRecord> {
  return (await (await fetch(`${url}/api/jobs/${id}`)).json()) as JobRecord;
}

/** The job's record once it has ended; `context` (the gateways' logs) goes in the error when it does not. */
export async function jobFinished(url: string, id: string, context: () => string): Promise<JobRecord> {
  return waitFor(
    async () => {
      const job = await jobRecord(url, id);
      return ['completed', 'failed', 'cancelled'].includes(job.state) && job;
    },
    // Generous: the bound of a hang on a loaded 2-core machine, not a claim about speed.
    { what: `job ${id} to finish`, timeoutMs: 300_000, intervalMs: 200, context },
  );
}
