import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

import { MetricsService } from './metrics.service.js';

/** The label of a request no route matched: raw URLs would make one series per path anyone tries. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Counts every answered request by its route's pattern once the response is sent, whatever answered it (a handler,
 * a guard's 401, the exception filter, or no route at all).
 */
@Injectable()
export class HttpMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: MetricsService) {}

  use(request: Request, response: Response, next: NextFunction): void {
    // Nest mounts middleware as a catch-all route of its own: that is `request.route` now, and still at the end
    // when no route of the API matched.
    const own: unknown = request.route;
    response.once('finish', () => {
      this.metrics.countHttpRequest({
        method: request.method,
        route: routeOf(request, own),
        status: response.statusCode,
      });
    });
    next();
  }
}

/**
 * Express sets `request.route` to the route that matched; its path is the pattern the route was declared with.
 * `own` is the middleware's own route, which does not count as a match.
 */
export function routeOf(request: Pick<Request, 'route' | 'baseUrl'>, own: unknown): string {
  const route = request.route as { path?: unknown } | undefined;
  if (route === own || typeof route?.path !== 'string') return UNMATCHED_ROUTE;
  return `${request.baseUrl}${route.path}`;
}
