import { Histogram, Registry } from 'prom-client';

import { TalliedHistogram } from './tallied-histogram.js';

const BOUNDS = [0.01, 0.5, 1, 10];

/** The same observations, given to a prom-client Histogram and to a TalliedHistogram, each on a registry of its own. */
async function expositions(observations: readonly (readonly [string, number])[]): Promise<[string, string]> {
  const theirs = new Registry();
  const reference = new Histogram({
    name: 'wait_seconds',
    help: 'How long.',
    labelNames: ['mode'] as const,
    buckets: BOUNDS,
    registers: [theirs],
  });
  const ours = new Registry();
  const tallied = new TalliedHistogram('wait_seconds', 'How long.', 'mode', BOUNDS);
  ours.registerMetric(tallied.asMetric());
  for (const [mode, value] of observations) {
    reference.observe({ mode }, value);
    tallied.observe(mode, value);
  }
  return [await theirs.metrics(), await ours.metrics()];
}

describe('TalliedHistogram', () => {
  it('exposes what a prom-client Histogram does: bounds inclusive, cumulative buckets, +Inf, sum and count', async () => {
    const [theirs, ours] = await expositions([
      ['a', 0],
      ['a', 0.01],
      ['a', 0.010001],
      ['b', 1],
      ['a', 10],
      ['b', 11],
      ['a', 0.5],
      ['say "hi"\n', 3],
    ]);
    expect(ours).toBe(theirs);
    expect(ours).toContain('wait_seconds_bucket{le="0.01",mode="a"} 2\n');
    expect(ours).toContain('wait_seconds_bucket{le="+Inf",mode="b"} 2\n');
    expect(ours).toContain('wait_seconds_count{mode="a"} 5\n');
  });

  it('exposes its name, help and type alone before anything was observed, and again after a reset', async () => {
    const [theirs, ours] = await expositions([]);
    expect(ours).toBe(theirs);
    expect(ours).toBe('# HELP wait_seconds How long.\n# TYPE wait_seconds histogram\n');

    const registry = new Registry();
    const tallied = new TalliedHistogram('wait_seconds', 'How long.', 'mode', BOUNDS);
    registry.registerMetric(tallied.asMetric());
    tallied.observe('a', 2);
    registry.resetMetrics();
    expect(await registry.metrics()).toBe(ours);
  });
});
