import { AsyncLocalStorage } from 'node:async_hooks';

import { outsideRequest } from './outside-request.js';

describe('outsideRequest', () => {
  it("runs a timer armed inside a request's context with no request store, and leaves the caller's alone", async () => {
    const storage = new AsyncLocalStorage<string>();
    const seen = await storage.run('request-1', async () => {
      const inside = await new Promise<string | undefined>((resolve) => setTimeout(() => resolve(storage.getStore())));
      const outside = await new Promise<string | undefined>((resolve) =>
        outsideRequest(() => setTimeout(() => resolve(storage.getStore()))),
      );
      return { inside, outside, after: storage.getStore() };
    });
    expect(seen).toEqual({ inside: 'request-1', outside: undefined, after: 'request-1' });
  });
});
