import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, extname, resolve, sep } from 'node:path';

import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { load as parseYaml } from 'js-yaml';

import { parseImageSize, type ImageSize } from '../common/image-size.js';
import { inspectPlainData, type PlainDataProblem } from '../common/plain-data.js';
import { DEFAULT_SAMPLER } from '../common/samplers.js';
import { formatValidationErrors, STRICT_VALIDATION } from '../common/validation-errors.js';
import { DEFAULT_MODES_FILE_MAX_NODES, type AppConfig } from '../config/app-config.js';
import { ModesConfigError, ModesFileNotFoundError } from '../errors/domain.errors.js';
import { LoraDto } from './dto/lora.dto.js';
import { toModeDto } from './dto/mode.dto.js';
import { parseKeepAlive } from './keep-alive.js';
import { modeKey } from './mode-key.js';
import { MODE_NAME, MODE_NAME_RULE } from './mode-name.js';
import { RealPaths } from './real-paths.js';
import { ModesFileDto } from './dto/modes-file.dto.js';
import type { ModesConfig, ResolvedLora, ResolvedMode, ResolvedSuperres } from './mode.types.js';

const DEFAULT_SIZE: ImageSize = { width: 512, height: 512 };
const DEFAULT_STEPS = 4;
const DEFAULT_GUIDANCE = 1.0;
const DEFAULT_LORA_STRENGTH = 1.0;
/** Loading a pickle runs whatever code it carries. */
const PICKLE_EXTENSIONS = new Set(['.ckpt', '.pt', '.pth', '.bin']);
/** Deeper than any valid modes file; what the recursive converters after the checks can take. */
const MAX_DEPTH = 64;

export interface ParseOptions {
  /** Named in error messages. */
  readonly source: string;
  /** Relative model_root and lora_root resolve against this folder. */
  readonly baseDir: string;
  readonly allowPickle: boolean;
  /** The most values the parsed file may hold, each use of an alias counted again (MODES_FILE_MAX_NODES). */
  readonly maxNodes?: number;
  readonly legacy?: boolean;
}

/**
 * Loads the modes file, or, when it is missing and MODEL_ROOT and MODEL are
 * set, the one implicit mode of the legacy environment. Throws
 * ModesFileNotFoundError or ModesConfigError (every problem, with its path).
 */
export function loadModesConfig(config: AppConfig): ModesConfig {
  const text = readModesFile(config.modesFile, config.modesFileMaxBytes);
  if (text === undefined) {
    const { modelRoot, model, loraRoot } = config.legacy;
    if (modelRoot === undefined || model === undefined) throw new ModesFileNotFoundError(config.modesFile);
    return legacyModesConfig(modelRoot, model, loraRoot, config.allowPickle);
  }
  return parseModesFile(text, config);
}

/**
 * The modes file's text, or undefined when there is no such file; other read errors are thrown. A file of more
 * than `maxBytes` (MODES_FILE_MAX_BYTES) is a ModesConfigError, found without reading more than that: a size
 * the file system reports is trusted first, and the read stops there for files that report none (a pipe, /dev/zero).
 */
export function readModesFile(path: string, maxBytes: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const tooLarge = (size?: number): ModesConfigError =>
    new ModesConfigError(path, [
      `the file is ${size === undefined ? '' : `${size} bytes, `}more than MODES_FILE_MAX_BYTES (${maxBytes} bytes)`,
    ]);
  try {
    const { size } = fstatSync(fd);
    if (size > maxBytes) throw tooLarge(size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(maxBytes + 1 - total, 65_536));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw tooLarge();
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Parses the text of MODES_FILE as the settings say (its folder, ALLOW_PICKLE). Throws ModesConfigError. */
export function parseModesFile(text: string, config: AppConfig): ModesConfig {
  return parseModesConfig(text, {
    source: config.modesFile,
    baseDir: dirname(config.modesFile),
    allowPickle: config.allowPickle,
    maxNodes: config.modesFileMaxNodes,
  });
}

/** The deprecated MODEL_ROOT / MODEL / LORA_ROOT setup as one mode named after the model's file stem. */
function legacyModesConfig(
  modelRoot: string,
  model: string,
  loraRoot: string | undefined,
  allowPickle: boolean,
): ModesConfig {
  const name = stem(model);
  const document = { model_root: modelRoot, lora_root: loraRoot, default_mode: name, modes: { [name]: { model } } };
  return buildModesConfig(document, {
    source: 'legacy MODEL_ROOT/MODEL environment',
    baseDir: process.cwd(),
    allowPickle,
    legacy: true,
  });
}

export function parseModesConfig(text: string, options: ParseOptions): ModesConfig {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ModesConfigError(options.source, [`not valid YAML: ${(error as Error).message}`]);
  }
  // Before anything copies the document: a copy expands every alias.
  const maxNodes = options.maxNodes ?? DEFAULT_MODES_FILE_MAX_NODES;
  const problem = inspectPlainData(document, { maxNodes, maxDepth: MAX_DEPTH, namesAt: 'modes' });
  if (problem) throw new ModesConfigError(options.source, [describeProblem(problem, maxNodes)]);
  return buildModesConfig(document, options);
}

function describeProblem(problem: PlainDataProblem, maxNodes: number): string {
  switch (problem.kind) {
    case 'too_many_nodes':
      return (
        `the file holds more than ${maxNodes} values (MODES_FILE_MAX_NODES), each use of a YAML alias (*name) ` +
        'counted again'
      );
    case 'too_deep':
      return `${problem.path}: nested deeper than ${MAX_DEPTH} levels, YAML aliases expanded`;
    case 'reserved_key':
      return problem.path === `modes.${problem.key}`
        ? `${problem.path}: '${problem.key}' cannot be a mode name; mode names ${MODE_NAME_RULE}`
        : `${problem.path}: '${problem.key}' is not allowed as a key`;
    case 'lone_surrogate':
      return `${problem.path || 'the file'}: holds a lone UTF-16 surrogate, which is not text`;
  }
}

function buildModesConfig(document: unknown, options: ParseOptions): ModesConfig {
  if (!isMapping(document)) {
    throw new ModesConfigError(options.source, ['must be a mapping with model_root, default_mode and modes']);
  }
  // The modes are validated one by one from the parsed document below, not through this conversion: it copies
  // each entry by assignment, which turns a mode named like an Object member (constructor) into something else.
  const rawModes = document['modes'];
  const file = plainToInstance(ModesFileDto, { ...document, modes: isMapping(rawModes) ? {} : rawModes });
  const problems = formatValidationErrors(validateSync(file, STRICT_VALIDATION));
  const modelRoot = nonEmpty(file.model_root) ? resolve(options.baseDir, file.model_root) : undefined;
  const loraRoot = nonEmpty(file.lora_root) ? resolve(options.baseDir, file.lora_root) : modelRoot;
  const modes = new Map<string, ResolvedMode>();

  if (isMapping(rawModes)) {
    // A root that is itself invalid is already reported: check the modes' paths against '/' meanwhile.
    const roots: Roots = {
      modelRoot: modelRoot ?? sep,
      loraRoot: loraRoot ?? sep,
      allowPickle: options.allowPickle,
      realPaths: new RealPaths(),
      placements: new Map(),
    };
    const names = Object.keys(rawModes);
    if (names.length === 0) problems.push('modes: must define at least one mode');
    for (const name of names) {
      const mode = resolveMode(name, rawModes[name], roots, problems);
      if (mode) modes.set(name, mode);
    }
    if (names.length > 0 && nonEmpty(file.default_mode) && !names.includes(file.default_mode)) {
      problems.push(`default_mode: '${file.default_mode}' is not one of the modes (${names.join(', ') || 'none'})`);
    }
  }
  if (problems.length > 0 || modelRoot === undefined || loraRoot === undefined) {
    throw new ModesConfigError(options.source, problems);
  }
  return Object.freeze({
    source: options.source,
    legacy: options.legacy ?? false,
    modelRoot,
    loraRoot,
    defaultMode: file.default_mode,
    modes,
  });
}

interface Roots {
  readonly modelRoot: string;
  readonly loraRoot: string;
  readonly allowPickle: boolean;
  /** This parse's own: see RealPaths. */
  readonly realPaths: RealPaths;
  /** What `inside` found for each root and path, also this parse's own: many modes name the same files. */
  readonly placements: Map<string, Placement>;
}

interface Placement {
  readonly absolute: string;
  /** Why the path is refused, after the field it was found in. */
  readonly refused?: string;
}

/** Validates and resolves one mode; pushes its problems and returns undefined when there are any. */
function resolveMode(name: string, raw: unknown, roots: Roots, problems: string[]): ResolvedMode | undefined {
  const at = `modes.${name}`;
  if (!MODE_NAME.test(name)) {
    problems.push(`${at}: mode names ${MODE_NAME_RULE}`);
    return undefined;
  }
  if (!isMapping(raw)) {
    problems.push(`${at}: must be a mapping with at least a model`);
    return undefined;
  }
  const dto = toModeDto(raw);
  const before = problems.length;
  problems.push(...formatValidationErrors(validateSync(dto, STRICT_VALIDATION), at));

  // Paths are checked even when other fields failed, so that one pass reports every problem.
  const weights = (path: unknown, where: string, root: string, rootName: string): string =>
    nonEmpty(path) ? checkedWeights(path, `${at}.${where}`, root, rootName, roots, problems) : '';
  const modelPath = weights(dto.model, 'model', roots.modelRoot, 'model_root');
  const configDir = nonEmpty(dto.config)
    ? inside(dto.config, `${at}.config`, roots.modelRoot, 'model_root', roots, problems)
    : undefined;
  // An entry that is not a LoRA (a number, null) has been reported by validation; only LoRAs have paths to check.
  const entries: readonly unknown[] = Array.isArray(dto.loras) ? dto.loras : [];
  const resolved = entries.map((lora, index): ResolvedLora | undefined =>
    lora instanceof LoraDto
      ? {
          path: lora.path,
          absolutePath: weights(lora.path, `loras[${index}].path`, roots.loraRoot, 'lora_root'),
          strength: lora.strength ?? DEFAULT_LORA_STRENGTH,
          adapterName: lora.adapter_name ?? stem(String(lora.path)),
        }
      : undefined,
  );
  resolved.forEach((lora, index) => {
    if (lora === undefined) return;
    const first = resolved.findIndex((other) => other?.adapterName === lora.adapterName);
    if (first < index) {
      problems.push(
        `${at}.loras[${index}].adapter_name: '${lora.adapterName}' is already used by loras[${first}]; set a different adapter_name`,
      );
    }
  });
  const vaePath = nonEmpty(dto.vae) ? weights(dto.vae, 'vae', roots.modelRoot, 'model_root') : undefined;
  const superres: ResolvedSuperres | undefined = dto.superres && {
    model: dto.superres.model,
    modelPath: weights(dto.superres.model, 'superres.model', roots.modelRoot, 'model_root'),
    scale: dto.superres.scale,
  };
  if (problems.length > before) return undefined;
  const loras = resolved.filter((lora): lora is ResolvedLora => lora !== undefined);

  const size = dto.default_size === undefined ? undefined : parseImageSize(dto.default_size);
  const keepAlive = parseKeepAlive(dto.keep_alive ?? -1);
  // Only what the model host loads goes into the key: editing a default, the sampler, clip_skip, metadata or the
  // memory policy (keep_alive, pinned) reloads nothing. Fields added later join only when set, so that existing
  // modes keep their keys.
  const loaded = {
    modelPath,
    configDir: configDir ?? null,
    loras: loras.map((lora) => [lora.absolutePath, lora.strength, lora.adapterName]),
    superres: superres ? [superres.modelPath, superres.scale ?? null] : null,
    ...(dto.prediction_type !== undefined && { predictionType: dto.prediction_type }),
    ...(vaePath !== undefined && { vaePath }),
  };
  return Object.freeze({
    name,
    key: modeKey(name, loaded),
    model: dto.model,
    modelPath,
    config: nonEmpty(dto.config) ? dto.config : undefined,
    configDir,
    loras: Object.freeze(loras),
    defaultSize: size?.ok ? size.size : DEFAULT_SIZE,
    defaultSteps: dto.default_steps ?? DEFAULT_STEPS,
    defaultGuidance: dto.default_guidance ?? DEFAULT_GUIDANCE,
    defaultsSet: { steps: dto.default_steps !== undefined, guidance: dto.default_guidance !== undefined },
    metadata: dto.metadata,
    superres,
    sampler: dto.scheduler ?? DEFAULT_SAMPLER,
    clipSkip: dto.clip_skip,
    predictionType: dto.prediction_type,
    vae: dto.vae,
    vaePath,
    keepAlive: dto.keep_alive ?? -1,
    keepAliveMs: keepAlive.ok ? keepAlive.ms : undefined,
    pinned: dto.pinned ?? false,
  });
}

/** A weights file: inside its root, and not a pickle unless ALLOW_PICKLE=1. */
function checkedWeights(
  path: string,
  at: string,
  root: string,
  rootName: string,
  roots: Roots,
  problems: string[],
): string {
  const extension = extname(path).toLowerCase();
  if (!roots.allowPickle && PICKLE_EXTENSIONS.has(extension)) {
    problems.push(
      `${at}: ${extension} files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1`,
    );
  }
  return inside(path, at, root, rootName, roots, problems);
}

/**
 * The one check of every path a mode names (model, config, LoRAs, upscaler, ...): resolved against `root`, it
 * must land inside the root as written (no ../, no absolute path elsewhere) and, with every symbolic link
 * followed, inside the root's real path too, so a link placed in the root cannot lead out of it. A path that does
 * not exist (yet) passes when its nearest existing folder is inside; the model host reports it missing at load.
 * Returns the absolute path as written: the model host checks the real path again when it opens the file.
 */
function inside(path: string, at: string, root: string, rootName: string, roots: Roots, problems: string[]): string {
  const key = `${rootName}\0${root}\0${path}`;
  let placement = roots.placements.get(key);
  if (placement === undefined) {
    placement = place(path, root, rootName, roots.realPaths);
    roots.placements.set(key, placement);
  }
  if (placement.refused !== undefined) problems.push(`${at}: ${placement.refused}`);
  return placement.absolute;
}

function place(path: string, root: string, rootName: string, realPaths: RealPaths): Placement {
  const absolute = resolve(root, path);
  if (!isWithin(root, absolute)) return { absolute, refused: `'${path}' must be inside ${rootName} (${root})` };
  try {
    const realRoot = realPaths.of(root);
    const real = realPaths.of(absolute);
    if (!isWithin(realRoot, real)) {
      return { absolute, refused: `'${path}' resolves outside ${rootName}: it leads to ${real}, not into ${realRoot}` };
    }
  } catch (error) {
    return { absolute, refused: `'${path}' cannot be resolved: ${(error as Error).message}` };
  }
  return { absolute };
}

/** Both paths absolute and normalized (as resolve, join and realpath give them), so a prefix says it. */
function isWithin(root: string, path: string): boolean {
  const prefix = root.endsWith(sep) ? root : `${root}${sep}`;
  return path.length > prefix.length && path.startsWith(prefix);
}

function stem(path: string): string {
  const name = basename(path);
  return name.slice(0, name.length - extname(name).length) || name;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
