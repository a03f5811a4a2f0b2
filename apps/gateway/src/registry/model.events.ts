import { Injectable } from '@nestjs/common';

import type { LoadResult } from '../model-host/model-host.types.js';

/**
 * Why a pipeline key left the device (README "Metrics"): `make-room` — the model host evicted it to fit a load;
 * `oom-retry` — it evicted it after a load ran out of device memory; `unload` — someone asked for it; `keep-alive` —
 * it sat unused past its keep-alive time; `stale` — its mode's definition changed, so no job will use it again.
 * One more says why a key left the RAM tier, having left the device before: `ram-full` — the model host dropped it,
 * its least recently used parked pipeline, to stay within RAM_CACHE_BYTES.
 */
export type EvictionReason = 'make-room' | 'oom-retry' | 'unload' | 'keep-alive' | 'stale' | 'ram-full';

/**
 * What a model host did with pipelines, as its registry recorded it; `host` is its id. `memory`: its memory figures
 * changed (read them from its registry).
 */
export type ModelEvent = { readonly host: string } & (
  | {
      readonly type: 'loaded';
      readonly key: string;
      readonly mode: string;
      readonly source: LoadResult['source'];
      readonly bytes: number;
      /** The family the model host detected (sd15, sdxl-base, ...). */
      readonly architecture: string;
      /** It took a pipeline a prefetch had built in the RAM tier. */
      readonly prefetched: boolean;
    }
  | {
      readonly type: 'evicted';
      readonly key: string;
      readonly reason: EvictionReason;
    }
  | { readonly type: 'load-failed'; readonly mode: string; readonly error: Error }
  | { readonly type: 'memory' }
);

export type ModelEventListener = (event: ModelEvent) => void;

/** The bus of model events: metrics subscribe to it. A listener that throws harms neither the registry nor the others. */
@Injectable()
export class ModelEvents {
  private readonly listeners = new Set<ModelEventListener>();

  /** Calls `listener` for every event from now on; the returned function unsubscribes. */
  on(listener: ModelEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: ModelEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A broken subscriber must not break the load that is being recorded.
      }
    }
  }
}
