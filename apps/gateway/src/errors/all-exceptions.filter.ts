import { Catch, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';

import { DomainError, JobCancelledError, NotReadyError } from './domain.errors.js';
import { renderErrorBody } from './error-body.renderer.js';
import { classifyError } from './http-error.table.js';

/**
 * The app's one exception filter: the table gives the status, the renderer the body — `{ error, message,
 * statusCode }`, or OpenAI's `{ error: { message, type, param, code } }` on its routes under /v1.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const failure = classifyError(exception);
    const { status, message, headers } = failure;
    // Readiness probes poll /ready, and a cancelled job is a client that went away:
    // both are expected, not worth an error line each.
    if (exception instanceof JobCancelledError) {
      this.logger.log(`client gone: ${exception.message}`);
    } else if (status >= 500 && !(exception instanceof NotReadyError)) {
      // Our own errors explain themselves; anything else is a bug and needs its stack, in the log only.
      const detail = exception instanceof DomainError || !(exception instanceof Error) ? undefined : exception.stack;
      this.logger.error(`${status} ${message}`, detail);
    }
    const http = host.switchToHttp();
    const response = http.getResponse<Response>();
    if (response.headersSent) {
      response.end();
      return;
    }
    response.status(status).set(headers).json(renderErrorBody(failure, http.getRequest<Request>().path));
  }
}
