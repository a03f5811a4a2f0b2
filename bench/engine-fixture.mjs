// The job engine in this process, for the queue benchmarks: the whole AppModule of a build (GATEWAY_DIST, so that an
// older build can be measured too) over a model host that does everything at once, in memory (the ModelHost
// interface, nothing behind it), with a modes file of one mode and a registered no-op handler, `bench.noop`.
import 'reflect-metadata';

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { Test } from '@nestjs/testing';

export const dist = resolve(process.env.GATEWAY_DIST ?? 'dist/apps/gateway');
/** A module of the build under test. */
export const load = (path) => import(pathToFileURL(join(dist, path)).href);

const memory = {
  device: 'cpu',
  deviceName: 'bench',
  totalBytes: 2 ** 33,
  usedBytes: 0,
  availableBytes: 2 ** 33,
  models: [],
  reserveBytes: 0,
  ramTierBytes: 0,
  ramTierCapacityBytes: 0,
};
const fakeModelHost = {
  load: async (mode) => ({
    key: mode.key,
    architecture: 'sd15',
    bytes: 1,
    estimatedBytes: 1,
    loadSeconds: 0,
    source: 'disk',
    evicted: [],
    evictedToRam: [],
    device: 'cpu',
  }),
  getMemory: async () => memory,
  generate: async () => {
    throw new Error('the queue benchmarks run no generation');
  },
  runTask: async () => null,
  healthStatus: async () => 'serving',
  isServing: async () => true,
  setModelRoots: async (roots) => [...roots],
  listModels: async () => ({ roots: [], polling: false, files: [] }),
  waitForReady: async () => undefined,
  unload: async () => 0,
  prefetch: async () => ({ wanted: [], skipped: [] }),
};
const fakeProcess = {
  managed: false,
  start() {},
  onLost() {},
  waitForReady: async () => undefined,
  stop: async () => undefined,
};
/** Every host the engine makes gets the in-memory model host (one host: SIDECAR_DEVICES is not set). */
const fakeFactory = { create: () => ({ client: fakeModelHost, process: fakeProcess }), cudaDevices: () => 0 };

// The module graph is entered where main.js enters it, so its circular imports evaluate in the same order.
const { AppModule } = await load('app.module.js');
const { loadConfig } = await load('config/app-config.js');
// Moved from mode-switch/ to modes/ (both tried: the bench also runs an older build, GATEWAY_DIST).
const { ModelFilesProbe } = await load('modes/model-files.probe.js').catch(() =>
  load('mode-switch/model-files.probe.js'),
);
const { ModelHostFactory } = await load('model-host/model-host.factory.js');
const { WorkerPool } = await load('queue/worker-pool.service.js');

/** The engine with `env` over the defaults (silent logs, no watcher): `{ pool, close }`. */
export async function startEngine(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-engine-'));
  writeFileSync(
    join(dir, 'modes.yaml'),
    'model_root: /models\ndefault_mode: a\nmodes:\n  a:\n    model: a.safetensors\n',
  );
  const config = loadConfig(
    { LOG_LEVEL: 'silent', MODES_WATCH: '0', MODES_FILE: join(dir, 'modes.yaml'), ...env },
    dir,
  );
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
    .overrideProvider(ModelHostFactory)
    .useValue(fakeFactory)
    .overrideProvider(ModelFilesProbe)
    .useValue({ firstMissing: () => undefined, missingFiles: () => [] })
    .compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  const pool = app.get(WorkerPool);
  pool.registerHandler('bench.noop', () => undefined);
  return {
    pool,
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
