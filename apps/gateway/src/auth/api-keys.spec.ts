import type { Request } from 'express';

import { ForbiddenError, UnauthorizedError } from '../errors/domain.errors.js';
import { ApiKeys } from './api-keys.js';

const withHeaders = (headers: Record<string, string>): Request => ({ headers }) as unknown as Request;
const none = withHeaders({});
const key = (value: string): Request => withHeaders({ 'x-api-key': value });

describe('ApiKeys', () => {
  it('is open, for every level, when no key is configured', () => {
    const keys = new ApiKeys({ apiKeys: [], adminApiKeys: [], metricsPublic: false });
    expect(keys.open).toBe(true);
    for (const level of ['public', 'key', 'admin', 'metrics'] as const)
      expect(() => keys.check(none, level)).not.toThrow();
  });

  it('follows METRICS_PUBLIC on the metrics level', () => {
    const closed = new ApiKeys({ apiKeys: ['k'], adminApiKeys: [], metricsPublic: false });
    const open = new ApiKeys({ apiKeys: ['k'], adminApiKeys: [], metricsPublic: true });
    expect(() => closed.check(none, 'metrics')).toThrow(UnauthorizedError);
    expect(() => closed.check(key('k'), 'metrics')).not.toThrow();
    expect(() => open.check(none, 'metrics')).not.toThrow();
  });

  it('lets any key call admin routes when ADMIN_API_KEY is unset', () => {
    const keys = new ApiKeys({ apiKeys: ['k'], adminApiKeys: [], metricsPublic: false });
    expect(() => keys.check(key('k'), 'admin')).not.toThrow();
    expect(() => keys.check(none, 'admin')).toThrow(UnauthorizedError);
  });

  it('tells a wrong key from a missing one, and a plain key on an admin route from both', () => {
    const keys = new ApiKeys({ apiKeys: ['k'], adminApiKeys: ['a'], metricsPublic: false });
    expect(() => keys.check(none, 'key')).toThrow('an API key is required');
    expect(() => keys.check(key('x'), 'key')).toThrow('the API key is not valid');
    expect(() => keys.check(key('k'), 'admin')).toThrow(ForbiddenError);
    expect(() => keys.check(key('a'), 'admin')).not.toThrow();
    expect(() => keys.check(withHeaders({ authorization: 'Bearer   a  ' }), 'key')).not.toThrow();
  });

  it('accepts the key from either header when a request sends both', () => {
    const keys = new ApiKeys({ apiKeys: ['k'], adminApiKeys: [], metricsPublic: false });
    expect(() => keys.check(withHeaders({ authorization: 'Bearer wrong', 'x-api-key': 'k' }), 'key')).not.toThrow();
  });
});
