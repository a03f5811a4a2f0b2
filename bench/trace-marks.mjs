// Timing marks inside a running gateway, for finding where a request's time goes without editing the gateway:
// preloaded with `node --import ./bench/trace-marks.mjs dist/apps/gateway/main.js`, it wraps the methods a
// POST /generate passes through (on their prototypes, before Nest builds anything) and, at exit, writes the
// median time of each stage to TRACE_MARKS_FILE (JSON). gateway-overhead.mjs --trace uses it.
//
// Stages of one request, each from the previous mark:
//   arrival      -> handler  : express middleware (body parser, pino-http), guards, pipes (class-validator)
//   handler      -> rpc      : GenerationService + WorkerPool.submitJob + the scheduler, until the Generate RPC
//   rpc          -> rpc end  : the Generate RPC, as the gateway sees it (model host + gRPC)
//   rpc end      -> returned : the job's promise settling back to the controller (store, events, resolve)
//   returned     -> finished : the interceptors, StreamableFile, headers and the write of the PNG
// and, outside requests: every GetMemory call the memory refresher makes, its duration, and whether it
// overlapped a Generate RPC (the model host serves both).
import 'reflect-metadata';

import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve(process.env.TRACE_DIST ?? 'dist/apps/gateway');
const load = (path) => import(pathToFileURL(resolve(dist, path)).href);
// The module graph is entered where main.js enters it, so its circular imports evaluate in the same order.
await load('app.module.js');
const { GenerationController } = await load('generation/generation.controller.js');
const { ModelHostClient } = await load('model-host/model-host.client.js');

const now = () => performance.now();
const requests = [];
let current; // requests are sent one at a time by the benchmark: the open one is the one being served
let rpcOpen = 0;
const memoryCalls = [];

subscribe('http.server.request.start', ({ request, response }) => {
  if (request.method !== 'POST' || !request.url.startsWith('/generate')) return;
  const marks = { arrival: now() };
  current = marks;
  response.once('finish', () => {
    marks.finished = now();
    requests.push(marks);
  });
});

const wrap = (prototype, name, before, after) => {
  const original = prototype[name];
  prototype[name] = function (...args) {
    const context = before?.();
    const result = original.apply(this, args);
    if (after && result && typeof result.then === 'function') {
      result.then(
        () => after(context),
        () => after(context),
      );
    }
    return result;
  };
  // Nest reads a route's decorators from the method itself, and some guards its name: the wrapper keeps both.
  Object.defineProperty(prototype[name], 'name', { value: original.name });
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), prototype[name]);
  }
};

wrap(
  GenerationController.prototype,
  'generate',
  () => {
    if (current) current.handler = now();
    return current;
  },
  (marks) => marks && (marks.returned = now()),
);
wrap(
  ModelHostClient.prototype,
  'generate',
  () => {
    rpcOpen += 1;
    if (current) current.rpc = now();
    return current;
  },
  (marks) => {
    rpcOpen -= 1;
    if (marks) marks.rpcEnd = now();
  },
);
wrap(
  ModelHostClient.prototype,
  'getMemory',
  () => ({ started: now(), overlapped: rpcOpen > 0 }),
  (call) => memoryCalls.push({ ms: now() - call.started, overlapped: call.overlapped || rpcOpen > 0 }),
);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const STAGES = [
  ['arrival', 'handler'],
  ['handler', 'rpc'],
  ['rpc', 'rpcEnd'],
  ['rpcEnd', 'returned'],
  ['returned', 'finished'],
];

process.once('exit', () => {
  if (!process.env.TRACE_MARKS_FILE) return;
  const complete = requests.filter((marks) => STAGES.every(([from, to]) => marks[from] && marks[to]));
  const stages = Object.fromEntries(
    STAGES.map(([from, to]) => [`${from}->${to}`, median(complete.map((m) => m[to] - m[from]))]),
  );
  writeFileSync(
    process.env.TRACE_MARKS_FILE,
    JSON.stringify({
      requests: complete.length,
      median_ms: stages,
      get_memory: {
        calls: memoryCalls.length,
        median_ms: memoryCalls.length ? median(memoryCalls.map((c) => c.ms)) : null,
        overlapping_a_generate: memoryCalls.filter((c) => c.overlapped).length,
      },
    }),
  );
});
