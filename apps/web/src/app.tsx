import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { api, ApiError, get } from './api';
import { ConfigPanel } from './config-panel';
import { EventFeed, type FeedState } from './events';
import { GeneratePanel } from './generate-panel';
import { Login } from './login';
import { MemoryPanel } from './memory-panel';
import { QueuePanel } from './queue-panel';
import type { GenerateRequest, HostMemory, Job, ModelFile, ModesView, PageJob, Rejection, Status } from './types';

interface Session {
  auth_required: boolean;
  authenticated: boolean;
  admin: boolean;
}

const JOBS_KEPT = 200;
const byNewest = (a: PageJob, b: PageJob) => b.created_at.localeCompare(a.created_at);

/**
 * The page's state: read once with GETs, then kept up to date from GET /api/events alone (no polling). Events that
 * change what only a GET says in full (a model loaded or evicted, a host's state, a reload) re-read that GET.
 */
export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [modes, setModes] = useState<ModesView | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  const [memory, setMemory] = useState<Record<string, HostMemory>>({});
  const [hostStates, setHostStates] = useState<Record<string, { state: string; reason: string | null }>>({});
  const [jobs, setJobs] = useState<Map<string, PageJob>>(new Map());
  const [requests, setRequests] = useState<Record<string, GenerateRequest>>({});
  const [mine, setMine] = useState<string | null>(null);
  const [files, setFiles] = useState<ModelFile[] | null>(null);
  /** The queue's plan as the server gives it (job events carry no position: it changes with every other job). */
  const [positions, setPositions] = useState<Record<string, number>>({});
  const [rejection, setRejection] = useState<Rejection | null>(null);
  const [feedState, setFeedState] = useState<FeedState>('connecting');
  const [loadError, setLoadError] = useState<string | null>(null);

  const checkSession = useCallback(async () => {
    setSession(await get<Session>('/api/session'));
  }, []);
  useEffect(() => void checkSession(), [checkSession]);

  /** Turns a 401 (a restart forgot the session) back into the login. */
  const guarded = useCallback(
    async (read: () => Promise<void>) => {
      try {
        await read();
        setLoadError(null);
      } catch (caught) {
        if (caught instanceof ApiError && caught.status === 401) await checkSession();
        else setLoadError(caught instanceof Error ? caught.message : String(caught));
      }
    },
    [checkSession],
  );

  const readStatus = useCallback(
    () =>
      guarded(async () => {
        const next = await get<Status>('/api/models/status');
        setStatus(next);
        setHostStates(Object.fromEntries(next.hosts.map((host) => [host.id, { state: host.state, reason: null }])));
      }),
    [guarded],
  );
  const readModes = useCallback(() => guarded(async () => setModes(await get<ModesView>('/api/modes'))), [guarded]);
  const readFiles = useCallback(async () => {
    try {
      setFiles((await get<{ models: ModelFile[] }>('/api/models')).models);
    } catch {
      setFiles(null); // the model host is down: its files come back with it
    }
  }, []);

  const readPositions = useCallback(
    () =>
      guarded(async () => {
        const { jobs: waiting } = await get<{ jobs: Job[] }>('/api/jobs?state=queued&limit=100');
        setPositions(Object.fromEntries(waiting.map((job) => [job.id, job.position ?? 0])));
      }),
    [guarded],
  );

  const resync = useCallback(() => {
    void guarded(async () => {
      const [nextModes, nextStatus, list] = await Promise.all([
        get<ModesView>('/api/modes'),
        get<Status>('/api/models/status'),
        get<{ jobs: Job[] }>('/api/jobs?limit=100'),
      ]);
      setModes(nextModes);
      setStatus(nextStatus);
      setMemory({});
      setHostStates(Object.fromEntries(nextStatus.hosts.map((host) => [host.id, { state: host.state, reason: null }])));
      setJobs(new Map(list.jobs.map((job) => [job.id, job])));
      setPositions(
        Object.fromEntries(list.jobs.filter((job) => job.position !== null).map((job) => [job.id, job.position ?? 0])),
      );
      const failure = nextStatus.last_reload_error as Rejection | null;
      setRejection(failure && { source: failure.source, problems: failure.problems });
      await readFiles();
    });
  }, [guarded, readFiles]);

  // Re-reads a GET once per burst of events (a switch sends several).
  const pending = useRef(new Set<() => Promise<void>>());
  const flush = useRef<number | undefined>(undefined);
  const later = useCallback((read: () => Promise<void>) => {
    pending.current.add(read);
    window.clearTimeout(flush.current);
    flush.current = window.setTimeout(() => {
      const reads = [...pending.current];
      pending.current.clear();
      for (const run of reads) void run();
    }, 100);
  }, []);

  const onEvent = useCallback(
    (type: string, data: unknown) => {
      if (type === 'job.progress') {
        const { id, step, total_steps } = data as { id: string; step: number; total_steps: number };
        setJobs((old) => {
          const job = old.get(id);
          if (!job) return old;
          return new Map(old).set(id, { ...job, progress: { step, total_steps } });
        });
      } else if (type.startsWith('job.')) {
        const { from_mode, to_mode, ...job } = data as PageJob & { from_mode?: string | null; to_mode?: string };
        setJobs((old) => {
          const next = new Map(old);
          const switching =
            to_mode === undefined ? old.get(job.id)?.switching : { from_mode: from_mode ?? null, to_mode };
          next.set(job.id, { ...job, ...(switching && { switching }) });
          if (next.size > JOBS_KEPT) {
            const oldest = [...next.values()].sort(byNewest).slice(JOBS_KEPT);
            for (const gone of oldest) if (gone.state !== 'queued' && gone.state !== 'running') next.delete(gone.id);
          }
          return next;
        });
        if (type === 'job.switching' || type === 'job.completed') later(readStatus);
        // A job that joins or leaves the queue moves the others' positions.
        if (type !== 'job.switching') later(readPositions);
      } else if (type === 'memory') {
        const { host, total_bytes, used_bytes, models } = data as HostMemory & { host: string };
        setMemory((old) => ({ ...old, [host]: { total_bytes, used_bytes, models } }));
      } else if (type.startsWith('model.')) {
        later(readStatus);
        later(readFiles);
      } else if (type === 'host.state') {
        const { host, state, reason } = data as { host: string; state: string; reason: string | null };
        setHostStates((old) => ({ ...old, [host]: { state, reason } }));
        if (state === 'serving') {
          later(readStatus);
          later(readFiles);
        }
      } else if (type === 'config.reloaded') {
        setRejection(null);
        later(readModes);
        later(readStatus);
        later(readFiles);
      } else if (type === 'config.rejected') {
        setRejection(data as Rejection);
      }
    },
    [later, readStatus, readModes, readFiles, readPositions],
  );

  const signedIn = session !== null && session.authenticated;
  useEffect(() => {
    if (!signedIn) return;
    // The feed reads the state once its stream is open (EventFeed): no event falls between the two.
    const feed = new EventFeed({
      event: onEvent,
      resync,
      state: setFeedState,
      // A restart forgot the session: back to the login (which closes this feed) instead of retrying a 401.
      refused: () => void checkSession(),
    });
    feed.open();
    return () => feed.close();
  }, [signedIn, onEvent, resync, checkSession]);

  const ordered = useMemo(
    () =>
      [...jobs.values()]
        .sort(byNewest)
        .map((job) => (job.state === 'queued' ? { ...job, position: positions[job.id] ?? job.position } : job)),
    [jobs, positions],
  );

  if (session === null) return <p class="hint">Loading…</p>;
  if (!session.authenticated) return <Login onLoggedIn={() => void checkSession()} />;

  const logout = async () => {
    await api('DELETE', '/api/session');
    await checkSession();
  };
  const myJob = mine === null ? undefined : ordered.find((job) => job.id === mine);

  return (
    <>
      <header>
        <h1>modelhost</h1>
        <span class={`badge feed-${feedState}`} data-testid="feed-state">
          {feedState === 'live' ? 'live' : feedState}
        </span>
        {status?.hosts.map((host) => (
          <span key={host.id} class={`badge state-${hostStates[host.id]?.state ?? host.state}`}>
            {host.id}: {hostStates[host.id]?.state ?? host.state}
          </span>
        ))}
        {session.auth_required && (
          <button type="button" class="link" onClick={() => void logout()}>
            Log out
          </button>
        )}
      </header>
      {loadError && (
        <p role="alert" class="error">
          {loadError}
        </p>
      )}
      <main class="grid">
        {modes && (
          <GeneratePanel
            modes={modes}
            job={myJob}
            request={mine === null ? undefined : requests[mine]}
            authRequired={session.auth_required}
            onSubmitted={(job, request) => {
              setJobs((old) => (old.has(job.id) ? old : new Map(old).set(job.id, job)));
              setRequests((old) => ({ ...old, [job.id]: request }));
              setMine(job.id);
            }}
          />
        )}
        <QueuePanel jobs={ordered} />
        {status && modes && <MemoryPanel status={status} memory={memory} hostStates={hostStates} modes={modes} />}
        {modes && <ConfigPanel modes={modes} rejection={rejection} files={files} />}
      </main>
    </>
  );
}
