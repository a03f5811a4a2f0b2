import type { IncomingMessage } from 'node:http';

import { Module } from '@nestjs/common';
import type { ServerResponse } from 'node:http';

import { LoggerModule, PinoLogger } from 'nestjs-pino';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { EventBus } from '../events/event-bus.js';
import { EventsModule } from '../events/events.module.js';
import { GatewayLogger } from './gateway-logger.js';
import { JobLogService } from './job-log.service.js';
import { REDACTED, redactUrl } from './redact.js';
import { requestId } from './request-id.js';

/** Probes poll these every few seconds: a line each would drown the log. */
const QUIET_PATHS = new Set(['/health', '/ready']);
/** Dashboards and Prometheus poll these: their answered reads log at `debug`, their failures as any other. */
const POLLED_PATHS = new Set(['/api/models/status', '/api/vram', '/metrics']);

const pathOf = (request: IncomingMessage): string => request.url?.split('?')[0] ?? '';

/**
 * Structured JSON logs through pino (pretty when stdout is a terminal). Every line written while a request is
 * served, Nest's Logger included, carries its `request_id`; one line per finished request says its status and time,
 * and one per finished job its mode, phases and outcome.
 */
@Module({
  imports: [
    EventsModule,
    LoggerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        pinoHttp: {
          level: config.logLevel,
          genReqId: requestId,
          // Bind only the id to a request's lines; the full request goes on its completion line.
          quietReqLogger: true,
          customAttributeKeys: { reqId: 'request_id' },
          autoLogging: { ignore: (request: IncomingMessage) => QUIET_PATHS.has(pathOf(request)) },
          customLogLevel: (request, response, error) => {
            if (error || response.statusCode >= 500) return 'error';
            if (response.statusCode >= 400) return 'warn';
            return request.method === 'GET' && POLLED_PATHS.has(pathOf(request)) ? 'debug' : 'info';
          },
          // A completion line says what a person scanning the log needs: no headers (they are long, and carry
          // cookies and keys), and the URL without the value of any key-like query parameter.
          serializers: {
            req: (request: IncomingMessage) => ({ method: request.method, url: redactUrl(request.url) }),
            res: (response: ServerResponse) => ({ statusCode: response.statusCode }),
          },
          // API keys must never reach a log, whatever logs a request in full.
          redact: {
            paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', 'req.query'],
            censor: REDACTED,
          },
          ...(process.stdout.isTTY && {
            transport: { target: 'pino-pretty', options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l' } },
          }),
        },
      }),
    }),
  ],
  providers: [
    GatewayLogger,
    {
      provide: JobLogService,
      inject: [EventBus],
      // The root logger: a job runs long after (and for others than) the request that queued it, whose id would
      // mislead on its line.
      useFactory: (bus: EventBus) =>
        new JobLogService(
          (listener, types) => bus.subscribe(listener, types),
          (level, fields, message) => PinoLogger.root[level](fields, message),
        ),
    },
  ],
  exports: [GatewayLogger],
})
export class LoggingModule {}
