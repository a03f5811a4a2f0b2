import { cheapestHostFor, claimContext, NO_MODES } from './host-choice.js';
import type { ModelHostWorker } from './model-host.worker.js';

/** The parts of a worker the choice reads. */
function worker(
  id: string,
  { tiers = {}, free = 0, active }: { tiers?: Record<string, 'device' | 'ram'>; free?: number; active?: string },
): ModelHostWorker {
  return {
    session: { id },
    activeMode: active,
    tierOf: (mode: string) => tiers[mode],
    availableBytes: () => free,
    residentModes: () => new Set(Object.keys(tiers)),
  } as unknown as ModelHostWorker;
}

describe('cheapestHostFor', () => {
  it('takes the host holding the mode on its device, else in its RAM tier, else the one with most free memory', () => {
    const bare = worker('bare', { free: 900 });
    const parked = worker('parked', { tiers: { a: 'ram' }, free: 100 });
    const onDevice = worker('device', { tiers: { a: 'device' }, free: 0 });
    expect(cheapestHostFor('a', [bare, parked, onDevice]).session.id).toBe('device');
    expect(cheapestHostFor('a', [bare, parked]).session.id).toBe('parked');
    expect(cheapestHostFor('b', [parked, bare]).session.id).toBe('bare');
  });

  it('keeps the first host on a tie, and needs one', () => {
    const [one, two] = [worker('one', { free: 5 }), worker('two', { free: 5 })];
    expect(cheapestHostFor('a', [one, two]).session.id).toBe('one');
    expect(() => cheapestHostFor('a', [])).toThrow('needs a free host');
  });
});

describe('claimContext', () => {
  it('leaves out of `avoid` the modes the host holds or runs: their jobs cost it no load', () => {
    const host = worker('h', { tiers: { held: 'ram' }, active: 'running' });
    const context = claimContext(host, 42, new Set(['held', 'running', 'elsewhere']));
    expect(context).toMatchObject({ activeMode: 'running', now: 42, host: 'h' });
    expect([...(context.avoid ?? [])]).toEqual(['elsewhere']);
    expect([...(context.resident ?? [])]).toEqual(['held']);
  });

  it('shares the one empty set when nothing is to be avoided', () => {
    expect(claimContext(worker('h', {}), 0, NO_MODES).avoid).toBe(NO_MODES);
  });
});
