// Parse + validation of a 1,000-mode modes.yaml: the gateway's own parseModesConfig (from dist/: YAML, the node
// count check, class-validator, every mode's paths resolved and checked against the model root) against the
// baseline of js-yaml + class-transformer + class-validator alone on the same text, in the same process.
//
//   npm run build && node bench/modes-parse.mjs [MODES] [--json FILE]
import 'reflect-metadata';

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { load as parseYaml } from 'js-yaml';

import { percentile, round, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const MODES = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 1000);
const jsonFlag = args.indexOf('--json');
const ROUNDS = 30;
const dist = resolve(process.env.GATEWAY_DIST ?? 'dist/apps/gateway');
const load = (path) => import(pathToFileURL(join(dist, path)).href);

await load('app.module.js'); // the module graph entered where main.js enters it
const { parseModesConfig } = await load('modes/modes-config.loader.js');
const { ModesFileDto } = await load('modes/dto/modes-file.dto.js');
const { STRICT_VALIDATION } = await load('common/validation-errors.js');

const dir = mkdtempSync(join(tmpdir(), 'bench-modes-'));
// The loader checks paths, not weights: empty files stand in for a model and a LoRA.
writeFileSync(join(dir, 'model.safetensors'), '');
writeFileSync(join(dir, 'lora.safetensors'), '');
const text =
  `model_root: ${dir}\nlora_root: ${dir}\ndefault_mode: mode-0\nmodes:\n` +
  Array.from(
    { length: MODES },
    (_, i) =>
      `  mode-${i}:\n    model: model.safetensors\n    default_size: 64x64\n    default_steps: ${1 + (i % 50)}\n` +
      `    default_guidance: 5.0\n` +
      (i % 2
        ? `    loras:\n      - path: lora.safetensors\n        strength: 0.8\n        adapter_name: a${i}\n`
        : '') +
      `    metadata:\n      description: mode ${i}\n`,
  ).join('');

const time = (fn) => {
  const samples = [];
  for (let i = 0; i < ROUNDS + 3; i += 1) {
    const started = performance.now();
    fn();
    if (i >= 3) samples.push(performance.now() - started); // the first rounds warm the JIT
  }
  const sorted = samples.sort((a, b) => a - b);
  return { p50_ms: round(percentile(sorted, 50), 2), p90_ms: round(percentile(sorted, 90), 2) };
};

let gateway;
let baseline;
try {
  gateway = time(() => {
    const config = parseModesConfig(text, { source: 'bench', baseDir: dir, allowPickle: false, maxNodes: 1_000_000 });
    if (config.modes.size !== MODES) throw new Error(`parsed ${config.modes.size} modes, not ${MODES}`);
  });
  baseline = time(() => {
    const errors = validateSync(plainToInstance(ModesFileDto, parseYaml(text)), STRICT_VALIDATION);
    if (errors.length > 0) throw new Error(`the baseline found problems: ${errors[0]}`);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const result = {
  benchmark: 'modes-parse',
  what: `parse + validation of a ${MODES}-mode modes.yaml (${Buffer.byteLength(text)} bytes), ${ROUNDS} rounds`,
  gateway,
  baseline: { what: 'js-yaml load + class-transformer + class-validator (validateSync), nothing else', ...baseline },
  ratio_p50: round(gateway.p50_ms / baseline.p50_ms, 2),
  target_p50_ms: 50,
};
const out = writeResult(result, jsonFlag >= 0 ? args[jsonFlag + 1] : undefined);
console.log(JSON.stringify(result, null, 2));
console.log(`written to ${out}`);
