// What the gateway adds to a generation: POST /generate against the same Generate RPC sent straight to the model
// host the gateway uses, 1 step, 64×64, on a tiny demo model. One model host serves both paths (it is started
// here and the gateway is pointed at it with SIDECAR_ADDR), requests alternate in blocks, each block's first
// request is dropped (it pays for the other path's leftovers), and the p50s are compared.
//
//   npm run build && node bench/gateway-overhead.mjs [ROUNDS] [--json FILE]
//   GATEWAY_MAIN=/other/checkout/dist/apps/gateway/main.js node bench/gateway-overhead.mjs   # another build
//   BASELINE_MAIN=/old/dist/apps/gateway/main.js node bench/gateway-overhead.mjs   # before/after, interleaved
//   GATEWAY_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/gateway-overhead.mjs   # profile it
//   node bench/gateway-overhead.mjs --trace   # adds the median time of each stage inside the gateway (trace-marks.mjs)
//   BENCH_OVERHEAD_BUDGET_S=90 node bench/gateway-overhead.mjs   # stops collecting rounds after 90 s (default 600)
//
// Both clients are in this process: the HTTP one is node:http with a keep-alive agent (no fetch/undici layer),
// the gRPC one is @grpc/grpc-js with the gateway's own proto loader, so each path pays one client of its kind.
import * as grpc from '@grpc/grpc-js';
import { request as httpRequest, Agent } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { cpuMs, demoModesFile, percentile, round, spawnGateway, spawnModelHost, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const rounds = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 60);
const jsonFlag = args.indexOf('--json');
const trace = args.includes('--trace');
const MODE = process.env.MODE ?? 'sdxl-general';
const STEPS = Number(process.env.STEPS ?? 1);
const BLOCK = 10;
/** Rounds stop early once this is spent (a shared machine can make a 1-step generation take seconds). */
const BUDGET_MS = Number(process.env.BENCH_OVERHEAD_BUDGET_S ?? 600) * 1000;
const main = resolve(process.env.GATEWAY_MAIN ?? 'dist/apps/gateway/main.js');
const baselineMain = process.env.BASELINE_MAIN && resolve(process.env.BASELINE_MAIN);
const { loadModelHostProto } = await import(
  pathToFileURL(resolve(main, '..', 'model-host', 'proto-package.loader.js')).href
);

const modesFile = demoModesFile();
const modelHost = await spawnModelHost();
const traceDir = mkdtempSync(join(tmpdir(), 'bench-trace-'));

/** A gateway on the shared model host; with --trace, its stage marks go to traceDir/<name>.json. */
const startGateway = (name, gatewayMain) =>
  spawnGateway({
    main: gatewayMain,
    env: {
      MODES_FILE: modesFile,
      SIDECAR_ADDR: modelHost.address,
      ...(trace && { TRACE_MARKS_FILE: join(traceDir, `${name}.json`), TRACE_DIST: resolve(gatewayMain, '..') }),
    },
    nodeOptions: [process.env.GATEWAY_NODE_OPTIONS, trace && `--import ${resolve('bench/trace-marks.mjs')}`]
      .filter(Boolean)
      .join(' '),
  });
const gateways = { gateway: await startGateway('gateway', main) };
if (baselineMain) gateways.baseline = await startGateway('baseline', baselineMain);

const proto = loadModelHostProto();
const client = new proto.modelhost.v1.ModelHost(modelHost.address, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': -1,
});
const agent = new Agent({ keepAlive: true, maxSockets: 2 });
const body = (seed) =>
  JSON.stringify({ mode: MODE, prompt: 'a beautiful landscape', seed, size: '64x64', num_inference_steps: STEPS });

function viaGateway(url, seed) {
  const payload = body(seed);
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      `${url}/generate`,
      {
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`/generate: HTTP ${res.statusCode} ${Buffer.concat(chunks)}`));
          else resolvePromise(performance.now() - started);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function direct(key, seed) {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const call = client.Generate(
      {
        key,
        prompt: 'a beautiful landscape',
        negative_prompt: '',
        width: 64,
        height: 64,
        steps: STEPS,
        guidance_scale: 5.0,
        seed,
        superres: false,
        scheduler: '',
        clip_skip: 0,
      },
      { deadline: Date.now() + 60_000 },
    );
    let image;
    call.on('data', (event) => (image = event.image ?? image));
    call.on('error', reject);
    call.on('end', () => (image ? resolvePromise(performance.now() - started) : reject(new Error('no image'))));
  });
}

function memory() {
  return new Promise((resolvePromise, reject) =>
    client.GetMemory({}, (error, reply) => (error ? reject(error) : resolvePromise(reply))),
  );
}

const paths = ['direct', ...Object.keys(gateways)];
const samples = Object.fromEntries(paths.map((path) => [path, []]));
// CPU time spent per path by the gateways, the model host and this client: on a shared machine the wall-clock
// figures swing with the neighbours' load, the CPU each process spends per request does not.
const cpu = Object.fromEntries(paths.map((path) => [path, {}]));
const snapshot = () => ({
  ...Object.fromEntries(Object.entries(gateways).map(([name, g]) => [name, cpuMs(g.pid)])),
  modelHost: cpuMs(modelHost.pid),
  client: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
});
try {
  for (const g of Object.values(gateways)) await viaGateway(g.url, 0); // loads the mode
  const key = (await memory()).models.map((model) => model.key).find((k) => k.startsWith(`${MODE}-`));
  if (!key) throw new Error(`mode ${MODE} is not resident on the model host`);
  const runs = {
    direct: (seed) => direct(key, seed),
    ...Object.fromEntries(Object.entries(gateways).map(([name, g]) => [name, (seed) => viaGateway(g.url, seed)])),
  };
  for (const run of Object.values(runs)) for (let i = 0; i < 3; i += 1) await run(i); // warm every path
  let seed = 1;
  const measuring = performance.now();
  while (samples.gateway.length < rounds && performance.now() - measuring < BUDGET_MS) {
    for (const path of paths) {
      await runs[path](seed++); // pays for the previous path's leftovers: not counted
      const before = snapshot();
      for (let i = 0; i < BLOCK; i += 1) samples[path].push(await runs[path](seed++));
      const after = snapshot();
      for (const name of Object.keys(before)) cpu[path][name] = (cpu[path][name] ?? 0) + after[name] - before[name];
    }
  }
} finally {
  client.close();
  agent.destroy();
  for (const g of Object.values(gateways)) await g.stop();
  await modelHost.stop();
}

const summary = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return { n: xs.length, p50_ms: round(percentile(sorted, 50), 2), p90_ms: round(percentile(sorted, 90), 2) };
};
const summaries = Object.fromEntries(paths.map((path) => [path, summary(samples[path])]));
const cpuPerRequest = (path) =>
  Object.fromEntries(Object.entries(cpu[path]).map(([name, ms]) => [name, round(ms / samples[path].length, 2)]));
const against = (path) => ({
  ...summaries[path],
  added_p50_ms: round(summaries[path].p50_ms - summaries.direct.p50_ms, 2),
  ratio_p50: round(summaries[path].p50_ms / summaries.direct.p50_ms, 3),
  cpu_ms_per_request: cpuPerRequest(path),
  ...(trace && { trace: JSON.parse(readFileSync(join(traceDir, `${path}.json`), 'utf8')) }),
});
const result = {
  benchmark: 'gateway-overhead',
  what: `POST /generate vs the same Generate RPC straight to the model host; ${MODE}, ${STEPS} step(s), 64x64`,
  gateway_main: main,
  direct: { ...summaries.direct, cpu_ms_per_request: cpuPerRequest('direct') },
  gateway: against('gateway'),
  ...(baselineMain && { baseline_main: baselineMain, baseline: against('baseline') }),
  targets: { added_p50_ms: 3, ratio_p50: 1.1 },
  samples_ms: Object.fromEntries(paths.map((path) => [path, samples[path].map((x) => round(x, 2))])),
};
const out = writeResult(result, jsonFlag >= 0 ? args[jsonFlag + 1] : undefined);
console.log(JSON.stringify({ ...result, samples_ms: undefined }, null, 2));
console.log(`written to ${out}`);
