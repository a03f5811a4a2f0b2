import { Controller, Get, Headers, Query, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';

import { RequestCaller } from '../auth/api-key.guard.js';
import type { Caller } from '../auth/api-keys.js';
import { InvalidRequestError } from '../errors/domain.errors.js';
import { EventsQueryDto } from './dto/events.query.dto.js';
import { EVENT_TYPES, RESET_EVENT } from './event.types.js';
import { EventStreams } from './event-streams.service.js';

/** An event id as the stream gives them: a non-negative integer JavaScript holds exactly. */
const EVENT_ID = /^\d{1,15}$/;

@ApiTags('events')
@Controller('api/events')
export class EventsController {
  constructor(private readonly streams: EventStreams) {}

  @Get()
  @ApiOperation({
    summary:
      'Server-sent events: every job, model, memory, modes-file and model-host event of the gateway, each with an ' +
      "`id:` (a key that is not an admin's hears the job events of its own generations only). Reconnect with " +
      'Last-Event-ID to get what was missed (or one `reset`: re-read the state). Comment lines (`: heartbeat`) keep ' +
      'an idle stream open; a client that reads too slowly is disconnected.',
  })
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'the id of the last event received: the events after it are sent first',
    schema: { type: 'string', pattern: EVENT_ID.source },
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({
    description:
      'each event: `id: <n>`, `event: <type>` and `data: <JSON>`. Job events: the job record with `host` ' +
      '(`job.progress`: id, host, step, total_steps; `job.switching`: also from_mode, to_mode); `model.*`: host, ' +
      "mode, key, tier, bytes and source or reason; `memory`: one model host's figures; `config.reloaded`: the " +
      'modes; `config.rejected`: problems with their YAML paths; `host.state`: host, state, reason.',
    content: {
      'text/event-stream': {
        schema: {
          type: 'object',
          description: 'one event',
          required: ['id', 'event', 'data'],
          properties: {
            id: { type: 'string', description: 'grows by one per event' },
            event: { type: 'string', enum: [...EVENT_TYPES, RESET_EVENT] },
            data: { type: 'string', description: 'JSON' },
          },
        },
      },
    },
  })
  @ApiBadRequestResponse({ description: 'types is not a list of event type prefixes, or Last-Event-ID not an id' })
  @ApiServiceUnavailableResponse({ description: 'EVENT_STREAMS_MAX streams are open already; Retry-After' })
  events(
    @Query() query: EventsQueryDto,
    @Headers('last-event-id') lastEventId: string | undefined,
    @RequestCaller() caller: Caller,
    @Res() response: Response,
  ): void {
    if (lastEventId !== undefined && !EVENT_ID.test(lastEventId)) {
      throw new InvalidRequestError(['Last-Event-ID: must be an event id (a non-negative integer)']);
    }
    this.streams.serveBus(response, {
      lastEventId: lastEventId === undefined ? undefined : Number(lastEventId),
      types: query.types,
      caller,
    });
  }
}
