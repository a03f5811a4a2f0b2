/** Every event type the page listens to (GET /api/events sends each as `event: <type>`). */
export const EVENT_TYPES = [
  'job.queued',
  'job.started',
  'job.switching',
  'job.progress',
  'job.completed',
  'job.failed',
  'job.cancelled',
  'model.loaded',
  'model.evicted',
  'model.load_failed',
  'memory',
  'config.reloaded',
  'config.rejected',
  'host.state',
  'reset',
] as const;

export type FeedState = 'connecting' | 'live' | 'reconnecting';

export interface FeedHandlers {
  event(type: string, data: unknown): void;
  /** The stream (re)opened without a replay to trust: re-read the state with GETs. */
  resync(): void;
  state(state: FeedState): void;
  /** The server refused the stream (EventSource gave up): a 401 means the session is gone. */
  refused(): void;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * The page's one stream. While the connection drops and comes back (or the server ends it: EVENTS_STREAM_MAX_MS),
 * the browser's EventSource reconnects by itself and sends Last-Event-ID, and the server replays what was missed.
 * EventSource only has an id to send once an event came: a stream that opens before the page has one (the first,
 * a reconnect after a quiet spell, a new EventSource) makes the page read the state with GETs instead. When the
 * server refuses the stream (a 401 after a restart forgot the session, a 503 when too many are open) EventSource
 * gives up: a new one is opened after a doubling backoff.
 */
export class EventFeed {
  private source: EventSource | null = null;
  private backoffMs = 1000;
  private timer: number | undefined;
  private closed = false;

  constructor(private readonly handlers: FeedHandlers) {}

  open(): void {
    this.closed = false;
    this.connect();
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  private connect(): void {
    const source = new EventSource('/api/events');
    this.source = source;
    let hasId = false;
    this.handlers.state('connecting');
    source.onopen = () => {
      this.backoffMs = 1000;
      this.handlers.state('live');
      // Subscribed first, read second: nothing that happens in between is lost.
      if (!hasId) this.handlers.resync();
    };
    source.onerror = () => {
      if (this.closed || this.source !== source) return;
      this.handlers.state('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        this.handlers.refused();
        this.timer = window.setTimeout(() => this.connect(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      }
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message: MessageEvent<string>) => {
        if (message.lastEventId) hasId = true;
        if (type === 'reset') this.handlers.resync();
        else this.handlers.event(type, JSON.parse(message.data));
      });
    }
  }
}
