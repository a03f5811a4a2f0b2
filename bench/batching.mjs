// Batching: 8 concurrent POST /generate of one mode (same size, steps, guidance), images per second with
// MAX_BATCH=8 against MAX_BATCH=1 (one at a time), on one model host, tiny demo model, 64×64.
//
//   npm run build && node bench/batching.mjs [--json FILE]
//
// Whether the gateway batches is read from its own configuration (dist/): a build whose config has no MAX_BATCH
// gets a result saying "not built yet" rather than a figure.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { demoModesFile, round, spawnGateway, spawnModelHost, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const jsonFlag = args.indexOf('--json');
const out = jsonFlag >= 0 ? args[jsonFlag + 1] : undefined;
const CONCURRENT = 8;
const ROUNDS = Number(process.env.BENCH_BATCH_ROUNDS ?? 3);
const MODE = process.env.MODE ?? 'sdxl-general';
const main = resolve(process.env.GATEWAY_MAIN ?? 'dist/apps/gateway/main.js');

const { loadConfig } = await import(pathToFileURL(resolve(main, '..', 'config', 'app-config.js')).href);
const supported = (() => {
  try {
    return Object.keys(loadConfig({ MAX_BATCH: '8' })).some((key) => /batch/i.test(key));
  } catch {
    return false;
  }
})();

const what = `${CONCURRENT} concurrent POST /generate, ${MODE}, 64x64, 4 steps: MAX_BATCH=8 vs MAX_BATCH=1`;
if (!supported) {
  const file = writeResult({ benchmark: 'batching', what, not_run: 'not built yet: this build has no MAX_BATCH' }, out);
  console.log(`batching: not built yet (no MAX_BATCH in this build's configuration); written to ${file}`);
  process.exit(0);
}

const modelHost = await spawnModelHost();
const rows = [];
try {
  for (const maxBatch of [1, 8]) {
    const gateway = await spawnGateway({
      main,
      env: { MODES_FILE: demoModesFile(), SIDECAR_ADDR: modelHost.address, MAX_BATCH: String(maxBatch) },
    });
    const one = (seed) =>
      fetch(`${gateway.url}/generate`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          mode: MODE,
          prompt: 'a beautiful landscape',
          seed,
          size: '64x64',
          num_inference_steps: 4,
        }),
      }).then(async (response) => {
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`/generate: HTTP ${response.status}`);
      });
    try {
      await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => one(i))); // loads the mode, warms up
      const rates = [];
      for (let r = 0; r < ROUNDS; r += 1) {
        const started = performance.now();
        await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => one(r * CONCURRENT + i)));
        rates.push(CONCURRENT / ((performance.now() - started) / 1000));
      }
      rows.push({
        max_batch: maxBatch,
        images_per_s_best: round(Math.max(...rates), 2),
        rounds: rates.map((x) => round(x, 2)),
      });
    } finally {
      await gateway.stop();
    }
  }
} finally {
  await modelHost.stop();
}
const result = {
  benchmark: 'batching',
  what,
  rows,
  speedup: round(rows[1].images_per_s_best / rows[0].images_per_s_best, 2),
};
console.log(JSON.stringify(result, null, 2));
console.log(`written to ${writeResult(result, out)}`);
