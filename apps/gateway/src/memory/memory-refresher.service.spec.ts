import { jest } from '@jest/globals';

import { FakeModelHost } from '../../testing/fake-model-host.js';
import { ModelHostUnavailableError } from '../errors/domain.errors.js';
import { RegistryService } from '../registry/registry.service.js';
import type { MemoryStats } from '../model-host/model-host.types.js';
import { IDLE_READ_DELAY_MS, MEMORY_REFRESH_MS, MemoryRefresher } from './memory-refresher.service.js';

interface Read {
  readonly resolve: (stats: MemoryStats) => void;
  readonly reject: (error: Error) => void;
}

describe('MemoryRefresher', () => {
  let modelHost: FakeModelHost;
  let registry: RegistryService;
  let refresher: MemoryRefresher;
  let figures: MemoryStats;
  /** Every GetMemory asked and not answered yet, oldest first. */
  let reads: Read[];
  let asked: number;

  beforeEach(async () => {
    jest.useFakeTimers({ now: Date.parse('2026-12-01T12:00:00.000Z') });
    modelHost = new FakeModelHost();
    figures = await modelHost.getMemory();
    reads = [];
    asked = 0;
    modelHost.getMemory = () =>
      new Promise<MemoryStats>((resolve, reject) => {
        asked += 1;
        reads.push({ resolve, reject });
      });
    registry = new RegistryService();
    refresher = new MemoryRefresher(registry, modelHost);
  });

  afterEach(() => {
    refresher.close();
    jest.useRealTimers();
  });

  /** Answers the oldest read with figures saying `usedBytes`, and lets the refresher record them. */
  async function answer(usedBytes: number): Promise<void> {
    reads.shift()!.resolve({ ...figures, usedBytes });
    await jest.advanceTimersByTimeAsync(0);
  }

  it('never asks an idle model host', async () => {
    await jest.advanceTimersByTimeAsync(60 * MEMORY_REFRESH_MS);
    expect(asked).toBe(0);
  });

  it('reads every MEMORY_REFRESH_MS while a job runs, once when it has been idle a while, then stops', async () => {
    refresher.jobStarted();
    for (let tick = 1; tick <= 3; tick += 1) {
      await jest.advanceTimersByTimeAsync(MEMORY_REFRESH_MS);
      expect(asked).toBe(tick);
      await answer(tick);
    }
    expect(registry.lastMemory?.usedBytes).toBe(3);
    expect(registry.lastMemoryAt).toBe(Date.parse('2026-12-01T12:00:03.000Z'));
    const finished = refresher.jobFinished();
    await jest.advanceTimersByTimeAsync(IDLE_READ_DELAY_MS - 1);
    expect(asked).toBe(3);
    await jest.advanceTimersByTimeAsync(1);
    expect(asked).toBe(4);
    await answer(4);
    await finished;
    expect(registry.lastMemory?.usedBytes).toBe(4);
    await jest.advanceTimersByTimeAsync(60 * MEMORY_REFRESH_MS);
    expect(asked).toBe(4);
  });

  it('does not read when a job ends and the next one starts at once, but goes on reading periodically', async () => {
    refresher.jobStarted();
    await jest.advanceTimersByTimeAsync(MEMORY_REFRESH_MS - 100);
    const first = refresher.jobFinished();
    await jest.advanceTimersByTimeAsync(10);
    refresher.jobStarted();
    await first;
    expect(asked).toBe(0);
    // Back-to-back jobs are still read: the periodic reads did not stop between them.
    await jest.advanceTimersByTimeAsync(90);
    expect(asked).toBe(1);
    await answer(1);
    void refresher.jobFinished();
    await jest.advanceTimersByTimeAsync(IDLE_READ_DELAY_MS);
    expect(asked).toBe(2);
  });

  it('keeps reading while any of several jobs still runs', async () => {
    refresher.jobStarted();
    refresher.jobStarted();
    await refresher.jobFinished();
    expect(asked).toBe(0);
    await jest.advanceTimersByTimeAsync(MEMORY_REFRESH_MS);
    expect(asked).toBe(1);
    await answer(1);
    await jest.advanceTimersByTimeAsync(MEMORY_REFRESH_MS);
    expect(asked).toBe(2);
  });

  it('reads one at a time: refreshes asked meanwhile share one more read, after it', async () => {
    const first = refresher.refresh();
    const second = refresher.refresh();
    const third = refresher.refresh();
    expect(asked).toBe(1);
    await answer(1);
    await first;
    expect(registry.lastMemory?.usedBytes).toBe(1);
    // The later callers must see what happened since the first read began: one more read, shared.
    expect(asked).toBe(2);
    await answer(2);
    await Promise.all([second, third]);
    expect(registry.lastMemory?.usedBytes).toBe(2);
    expect(asked).toBe(2);
  });

  it('keeps the last figures when a read fails, and says why', async () => {
    const first = refresher.refresh();
    await answer(7);
    await first;
    const failed = refresher.refresh();
    reads.shift()!.reject(new ModelHostUnavailableError('connect ENOENT'));
    await expect(failed).resolves.toBeUndefined();
    expect(refresher.lastFailure).toBe('connect ENOENT');
    expect(registry.lastMemory?.usedBytes).toBe(7);
    const again = refresher.refresh();
    await answer(8);
    await again;
    expect(refresher.lastFailure).toBeUndefined();
  });
});
