import { get as httpGet, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SseMessage {
  readonly id: number | undefined;
  readonly type: string;
  readonly data: Record<string, unknown>;
}

export interface SseClient {
  readonly status: number;
  /** Every event received so far, in order. */
  readonly events: SseMessage[];
  /** The last `id:` the stream sent, as EventSource keeps it (an id-only frame sets it too). */
  readonly lastEventId: number | undefined;
  /** Resolves with the first event (received or to come) that `match` accepts; rejects if the stream ends first. */
  next(match: (event: SseMessage) => boolean): Promise<SseMessage>;
  /** Resolves when the server ends the stream (or the connection drops). */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens a server-sent-event stream on the test app's server and parses it as it arrives. */
export function openSse(server: Server, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, headers }, (response: IncomingMessage) => {
      const events: SseMessage[] = [];
      const waiters: { match: (event: SseMessage) => boolean; resolve: (event: SseMessage) => void }[] = [];
      let buffer = '';
      let lastEventId: number | undefined;
      let finished = false;
      const failWaiters: ((error: Error) => void)[] = [];
      const ended = new Promise<void>((done) => {
        const end = (): void => {
          if (finished) return;
          finished = true;
          for (const fail of failWaiters) fail(new Error(`${path}: the stream ended without the awaited event`));
          done();
        };
        response.on('end', end);
        response.on('close', end);
        response.on('error', end);
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          if (id !== undefined) lastEventId = Number(id);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type === undefined || data === undefined) continue;
          const event = {
            id: id === undefined ? undefined : Number(id),
            type,
            data: JSON.parse(data) as Record<string, unknown>,
          };
          events.push(event);
          for (const waiter of waiters.filter((w) => w.match(event))) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(event);
          }
        }
      });
      resolve({
        status: response.statusCode ?? 0,
        events,
        get lastEventId() {
          return lastEventId;
        },
        ended,
        next: (match) => {
          const found = events.find(match);
          if (found) return Promise.resolve(found);
          if (finished) return Promise.reject(new Error(`${path}: the stream has ended`));
          return new Promise((resolveEvent, rejectEvent) => {
            waiters.push({ match, resolve: resolveEvent });
            failWaiters.push(rejectEvent);
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}
