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
 * The page's one stream. While the connection drops and comes back, the browser's EventSource reconnects by itself
 * and sends Last-Event-ID, so the server replays what was missed. When the server refuses the stream (a 401 after a
 * restart forgot the session, a 503 when too many are open) EventSource gives up: a new one is opened after a
 * doubling backoff, and since a new EventSource cannot send Last-Event-ID, the page re-reads the state instead.
 */
export class EventFeed {
  private source: EventSource | null = null;
  private backoffMs = 1000;
  private timer: number | undefined;
  private closed = false;

  constructor(private readonly handlers: FeedHandlers) {}

  open(): void {
    this.closed = false;
    this.connect(false);
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }

  private connect(resync: boolean): void {
    const source = new EventSource('/api/events');
    this.source = source;
    this.handlers.state('connecting');
    source.onopen = () => {
      this.backoffMs = 1000;
      this.handlers.state('live');
      if (resync) this.handlers.resync();
      resync = false;
    };
    source.onerror = () => {
      if (this.closed || this.source !== source) return;
      this.handlers.state('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        this.handlers.refused();
        this.timer = window.setTimeout(() => this.connect(true), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      }
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message: MessageEvent<string>) => {
        if (type === 'reset') this.handlers.resync();
        else this.handlers.event(type, JSON.parse(message.data));
      });
    }
  }
}
