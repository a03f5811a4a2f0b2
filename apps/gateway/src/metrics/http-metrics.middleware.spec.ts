import type { Request } from 'express';

import { routeOf, UNMATCHED_ROUTE } from './http-metrics.middleware.js';

describe('routeOf', () => {
  const own = { path: '{/*splat}' };

  it("is the matched route's pattern, under its router's base path", () => {
    expect(routeOf({ route: { path: '/api/jobs/:id' }, baseUrl: '' } as Request, own)).toBe('/api/jobs/:id');
    expect(routeOf({ route: { path: '/:id' }, baseUrl: '/v1/models' } as Request, own)).toBe('/v1/models/:id');
  });

  it("is one label for every request no route matched: none, or only the middleware's own catch-all", () => {
    expect(routeOf({ route: undefined, baseUrl: '' } as Request, own)).toBe(UNMATCHED_ROUTE);
    expect(routeOf({ route: own, baseUrl: '' } as Request, own)).toBe(UNMATCHED_ROUTE);
  });
});
