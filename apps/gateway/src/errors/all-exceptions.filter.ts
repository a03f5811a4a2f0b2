import { Catch, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';

import { DomainError, JobCancelledError, NotReadyError } from './domain.errors.js';
import { toHttpError } from './http-error.table.js';

/** The app's one exception filter: every error reply is `{ error, message, statusCode }`. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const { status, body, headers } = toHttpError(exception);
    // Readiness probes poll /ready, and a cancelled job is a client that went away:
    // both are expected, not worth an error line each.
    if (exception instanceof JobCancelledError) {
      this.logger.log(`client gone: ${exception.message}`);
    } else if (status >= 500 && !(exception instanceof NotReadyError)) {
      // Our own errors explain themselves; anything else is a bug and needs its stack, in the log only.
      const detail = exception instanceof DomainError || !(exception instanceof Error) ? undefined : exception.stack;
      this.logger.error(`${status} ${body.message}`, detail);
    }
    const response = host.switchToHttp().getResponse<Response>();
    if (response.headersSent) {
      response.end();
      return;
    }
    response.status(status).set(headers).json(body);
  }
}
