export interface StreamEvent {
  /** The `id:` line's number, when the event has one (GET /api/events). */
  readonly id?: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
}

export interface EventStream {
  /** Every event received so far, in order. */
  readonly events: StreamEvent[];
  /** Resolves once the server has ended the stream: all its events. */
  readonly ended: Promise<StreamEvent[]>;
  /** Resolves with the first event (already received or still to come) that `match` accepts. */
  next(match: (event: StreamEvent) => boolean): Promise<StreamEvent>;
  /** Disconnects: `ended` then resolves with what was received. */
  close(): void;
}

/** How long `next` waits for an event: the bound of a hang, under jest's 120 s per test. */
const NEXT_TIMEOUT_MS = 100_000;

/** Reads a text/event-stream as it arrives; comment lines (heartbeats) are skipped. `headers`: an API key, a Last-Event-ID. */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: abort.signal });
  if (response.status !== 200 || !response.body) throw new Error(`${url}: ${response.status}`);
  const events: StreamEvent[] = [];
  const waiters: { match: (event: StreamEvent) => boolean; resolve: (event: StreamEvent) => void }[] = [];
  const deliver = (event: StreamEvent): void => {
    events.push(event);
    for (const waiter of waiters.filter((w) => w.match(event))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  };
  const ended = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          const id = /^id: (.*)$/m.exec(block)?.[1];
          if (type !== undefined && data !== undefined) {
            deliver({
              ...(id !== undefined && { id: Number(id) }),
              type,
              data: JSON.parse(data) as Record<string, unknown>,
            });
          }
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    }
    return events;
  })();
  return {
    events,
    ended,
    next: (match) => {
      const found = events.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        // Short of the test's own timeout: a wait that fails says what did come, instead of jest's bare timeout.
        const timer = setTimeout(() => {
          const last = events
            .slice(-15)
            .map((event) => `${event.id ?? ''} ${event.type} ${JSON.stringify(event.data)}`);
          reject(new Error(`no awaited event within ${NEXT_TIMEOUT_MS} ms; the last ones:\n${last.join('\n')}`));
        }, NEXT_TIMEOUT_MS);
        timer.unref();
        waiters.push({
          match,
          resolve: (event) => {
            clearTimeout(timer);
            resolve(event);
          },
        });
        void ended.then(() => reject(new Error('the stream ended without the awaited event')), reject);
      });
    },
    close: () => abort.abort(),
  };
}
