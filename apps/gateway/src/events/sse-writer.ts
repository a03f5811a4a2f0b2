/** What the writer needs of an HTTP response (Node's, so Express's too); the unit tests pass a fake. */
export interface SseResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  flushHeaders(): void;
  write(chunk: string): boolean;
  end(): unknown;
  destroy(): unknown;
  /** Bytes written but not yet taken by the client's socket (Node adds the socket's own buffer). */
  readonly writableLength: number;
  once(event: 'close', listener: () => void): unknown;
}

export interface SseOptions {
  /** A comment line this often, so proxies keep an idle stream open. */
  readonly heartbeatMs: number;
  /**
   * Past this many bytes written and not yet read by the client, the stream is cut: a client that reads slower than
   * events come would otherwise make the gateway buffer without bound. It reconnects with Last-Event-ID.
   */
  readonly maxBufferedBytes: number;
  /** Above 0: the stream ends after this long (EVENTS_STREAM_MAX_MS); the client reconnects and misses nothing. */
  readonly maxDurationMs?: number;
  /** Called once when the stream is cut for reading too slowly. */
  readonly onCut?: () => void;
}

/**
 * One server-sent-event stream on one response: the headers, the framing (`id:`, `event:`, one `data:` line of JSON),
 * heartbeats, and the bound on what a slow client may leave unread. Shared by GET /api/events and
 * /api/jobs/:id/events. Every way a stream ends (the client leaves, `end()`, a cut, the duration bound) runs the
 * `onClose` listeners once, so a subscriber unsubscribes in one place.
 */
export class SseWriter {
  private readonly heartbeat: NodeJS.Timeout;
  private readonly lifetime: NodeJS.Timeout | undefined;
  private readonly closeListeners: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly response: SseResponse,
    private readonly options: SseOptions,
  ) {
    response.statusCode = 200;
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-cache, no-transform');
    response.setHeader('Connection', 'keep-alive');
    // nginx would otherwise buffer the stream.
    response.setHeader('X-Accel-Buffering', 'no');
    response.flushHeaders();
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), options.heartbeatMs);
    if (options.maxDurationMs !== undefined && options.maxDurationMs > 0) {
      this.lifetime = setTimeout(() => this.end(), options.maxDurationMs);
    }
    response.once('close', () => this.close());
  }

  /** False once the stream has ended, whatever ended it. */
  get open(): boolean {
    return !this.closed;
  }

  /** Runs `listener` once when the stream ends (at once if it already has). */
  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  /** Sends one event; `data` is JSON already (a stream serializes each event once, however many clients read it). */
  send(type: string, data: string, id?: number): void {
    this.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${data}\n\n`);
  }

  /**
   * An id-only frame: EventSource keeps it as its last event id without dispatching anything, so a client that
   * reconnects before any event came still sends Last-Event-ID and misses nothing.
   */
  mark(id: number): void {
    this.write(`id: ${id}\n\n`);
  }

  end(): void {
    if (this.closed) return;
    this.close();
    this.response.end();
  }

  private write(frame: string): void {
    if (this.closed) return;
    this.response.write(frame);
    if (this.response.writableLength > this.options.maxBufferedBytes) this.cut();
  }

  /** The client reads too slowly: drop the connection (and what it left unread) rather than buffer on. */
  private cut(): void {
    this.close();
    this.options.onCut?.();
    this.response.destroy();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.lifetime);
    for (const listener of this.closeListeners.splice(0)) {
      try {
        listener();
      } catch {
        // One listener's failure must not keep the others from cleaning up.
      }
    }
  }
}
