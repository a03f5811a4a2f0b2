import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';

import type { Caller } from '../auth/api-keys.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EventStreamsFullError } from '../errors/domain.errors.js';
import { mayTouch } from '../jobs/job-access.js';
import { EventBus } from './event-bus.js';
import { eventData } from './event-data.js';
import { RESET_EVENT, type GatewayEvent, type JobBusEvent } from './event.types.js';
import { SseWriter, type SseResponse } from './sse-writer.js';

/** When a refused stream may try again: streams end when their clients go, which takes no longer than this. */
const STREAMS_RETRY_AFTER_SECONDS = 5;

export interface BusStreamRequest {
  /** The client's Last-Event-ID: replay what came after it (or a reset). */
  readonly lastEventId?: number | undefined;
  /** Type prefixes (`job.`, `model.`); none: every event. */
  readonly types?: readonly string[] | undefined;
  /**
   * Who reads (README "API keys"): a key that is not an admin's gets the job events of its own generations only, as
   * `GET /api/jobs` lists them; the events of other work would hand it their ids, and an id reads a job's image.
   * Undefined: every event (no key is checked).
   */
  readonly caller?: Caller | undefined;
}

/**
 * Opens the gateway's event streams: GET /api/events (the bus, replay, filters) and the SseWriter that
 * /api/jobs/:id/events uses too, with the same bound on slow clients; counts the open streams and the cut ones.
 */
@Injectable()
export class EventStreams implements BeforeApplicationShutdown {
  private readonly logger = new Logger(EventStreams.name);
  private openStreams = 0;
  /** The open writers: a stream never ends by itself, and the HTTP server's close waits for every open response. */
  private readonly writers = new Set<SseWriter>();
  private cutStreams = 0;
  /** Each event's data is serialized once, however many streams send it; dropped with the event. */
  private readonly serialized = new WeakMap<GatewayEvent, string>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly bus: EventBus,
  ) {}

  /** Streams open now, and streams cut so far because their client read too slowly. */
  get counts(): { readonly open: number; readonly cut: number } {
    return { open: this.openStreams, cut: this.cutStreams };
  }

  /**
   * A writer on `response`, counted, with the slow-client bound of EVENTS_CLIENT_MAX_BYTES; EventStreamsFullError
   * (503, before anything is written) when EVENT_STREAMS_MAX are open already.
   */
  open(response: SseResponse, options: { heartbeatMs: number; maxDurationMs?: number }): SseWriter {
    if (this.openStreams >= this.config.eventStreamsMax) {
      throw new EventStreamsFullError(this.config.eventStreamsMax, STREAMS_RETRY_AFTER_SECONDS);
    }
    const writer = new SseWriter(response, {
      ...options,
      maxBufferedBytes: this.config.eventsClientMaxBytes,
      onCut: () => {
        this.cutStreams += 1;
        this.logger.warn(
          `an event stream's client read too slowly (over ${this.config.eventsClientMaxBytes} bytes unread, ` +
            `EVENTS_CLIENT_MAX_BYTES): disconnected (${this.cutStreams} so far)`,
        );
      },
    });
    this.openStreams += 1;
    this.writers.add(writer);
    writer.onClose(() => {
      this.openStreams -= 1;
      this.writers.delete(writer);
    });
    return writer;
  }

  /**
   * Ends every open stream once the job engine has drained (its onModuleDestroy, which runs before this): a stream
   * left open would keep the HTTP server's close, and so the process, waiting for its client to leave.
   */
  beforeApplicationShutdown(): void {
    for (const writer of [...this.writers]) writer.end();
  }

  /**
   * GET /api/events: what the client missed since its Last-Event-ID (or one `reset`; a new client gets the newest
   * id to resume from, in an id-only frame), then every event as it is published. Replay and subscription happen in one synchronous turn: nothing published in between is lost.
   */
  serveBus(response: SseResponse, request: BusStreamRequest): void {
    const writer = this.open(response, {
      heartbeatMs: this.config.eventsHeartbeatMs,
      maxDurationMs: this.config.eventsStreamMaxMs,
    });
    const { caller } = request;
    const send = (event: GatewayEvent, id: number): void => {
      if (caller && !caller.admin && isJobEvent(event) && !mayTouch(event.job, caller)) return;
      writer.send(event.type, this.dataOf(event), id);
    };
    writer.onClose(this.bus.keepForReplay());
    if (request.lastEventId === undefined) {
      writer.mark(this.bus.lastId);
    } else {
      const replay = this.bus.since(request.lastEventId, request.types);
      if (replay.kind === 'reset') {
        const data = {
          reason: 'Last-Event-ID is older than the events kept (EVENTS_BUFFER) or not from this run: re-read the state',
          last_event_id: request.lastEventId,
          oldest_id: replay.oldestId,
        };
        writer.send(RESET_EVENT, JSON.stringify(data), replay.lastId);
      } else {
        for (const { event, id } of replay.events) send(event, id);
      }
    }
    if (!writer.open) return;
    writer.onClose(this.bus.subscribe(send, request.types));
  }

  private dataOf(event: GatewayEvent): string {
    let data = this.serialized.get(event);
    if (data === undefined) {
      data = JSON.stringify(eventData(event));
      this.serialized.set(event, data);
    }
    return data;
  }
}

function isJobEvent(event: GatewayEvent): event is JobBusEvent {
  return event.type.startsWith('job.');
}
