import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';

import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { load as parseYaml } from 'js-yaml';

import { parseImageSize, type ImageSize } from '../common/image-size.js';
import { DEFAULT_SCHEDULER } from '../common/samplers.js';
import { formatValidationErrors, STRICT_VALIDATION } from '../common/validation-errors.js';
import type { AppConfig } from '../config/app-config.js';
import { ModesConfigError, ModesFileNotFoundError } from '../errors/domain.errors.js';
import { ModeDto } from './dto/mode.dto.js';
import { ModesFileDto } from './dto/modes-file.dto.js';
import type { ModesConfig, ResolvedLora, ResolvedMode, ResolvedSuperres } from './mode.types.js';

const DEFAULT_SIZE: ImageSize = { width: 512, height: 512 };
const DEFAULT_STEPS = 4;
const DEFAULT_GUIDANCE = 1.0;
const DEFAULT_LORA_STRENGTH = 1.0;
/** Loading a pickle runs whatever code it carries. */
const PICKLE_EXTENSIONS = new Set(['.ckpt', '.pt', '.pth', '.bin']);
/** Mode names travel in headers, logs and sidecar keys. */
const MODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface ParseOptions {
  /** Named in error messages. */
  readonly source: string;
  /** Relative model_root and lora_root resolve against this folder. */
  readonly baseDir: string;
  readonly allowPickle: boolean;
  readonly legacy?: boolean;
}

/**
 * Loads the modes file, or, when it is missing and MODEL_ROOT and MODEL are
 * set, the one implicit mode of the legacy environment. Throws
 * ModesFileNotFoundError or ModesConfigError (every problem, with its path).
 */
export function loadModesConfig(config: AppConfig): ModesConfig {
  const text = readModesFile(config.modesFile);
  if (text === undefined) {
    const { modelRoot, model, loraRoot } = config.legacy;
    if (modelRoot === undefined || model === undefined) throw new ModesFileNotFoundError(config.modesFile);
    return legacyModesConfig(modelRoot, model, loraRoot, config.allowPickle);
  }
  return parseModesFile(text, config);
}

/** The modes file's text, or undefined when there is no such file; other read errors are thrown. */
export function readModesFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Parses the text of MODES_FILE as the settings say (its folder, ALLOW_PICKLE). Throws ModesConfigError. */
export function parseModesFile(text: string, config: AppConfig): ModesConfig {
  return parseModesConfig(text, {
    source: config.modesFile,
    baseDir: dirname(config.modesFile),
    allowPickle: config.allowPickle,
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
  return buildModesConfig(document, options);
}

function buildModesConfig(document: unknown, options: ParseOptions): ModesConfig {
  if (!isMapping(document)) {
    throw new ModesConfigError(options.source, ['must be a mapping with model_root, default_mode and modes']);
  }
  const file = plainToInstance(ModesFileDto, document);
  const problems = formatValidationErrors(validateSync(file, STRICT_VALIDATION));
  const modelRoot = nonEmpty(file.model_root) ? resolve(options.baseDir, file.model_root) : undefined;
  const loraRoot = nonEmpty(file.lora_root) ? resolve(options.baseDir, file.lora_root) : modelRoot;
  const modes = new Map<string, ResolvedMode>();

  if (isMapping(file.modes)) {
    // A root that is itself invalid is already reported: check the modes' paths against '/' meanwhile.
    const roots = { modelRoot: modelRoot ?? sep, loraRoot: loraRoot ?? sep, allowPickle: options.allowPickle };
    const names = Object.keys(file.modes);
    if (names.length === 0) problems.push('modes: must define at least one mode');
    for (const name of names) {
      const mode = resolveMode(name, file.modes[name], roots, problems);
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
}

/** Validates and resolves one mode; pushes its problems and returns undefined when there are any. */
function resolveMode(name: string, raw: unknown, roots: Roots, problems: string[]): ResolvedMode | undefined {
  const at = `modes.${name}`;
  if (!MODE_NAME.test(name)) {
    problems.push(`${at}: mode names may only use letters, digits, '.', '_' and '-', and start with a letter or digit`);
    return undefined;
  }
  if (!isMapping(raw)) {
    problems.push(`${at}: must be a mapping with at least a model`);
    return undefined;
  }
  const dto = plainToInstance(ModeDto, raw);
  const before = problems.length;
  problems.push(...formatValidationErrors(validateSync(dto, STRICT_VALIDATION), at));

  // Paths are checked even when other fields failed, so that one pass reports every problem.
  const weights = (path: unknown, where: string, root: string, rootName: string): string =>
    nonEmpty(path) ? checkedWeights(path, `${at}.${where}`, root, rootName, roots.allowPickle, problems) : '';
  const modelPath = weights(dto.model, 'model', roots.modelRoot, 'model_root');
  const configDir = nonEmpty(dto.config)
    ? inside(dto.config, `${at}.config`, roots.modelRoot, 'model_root', problems)
    : undefined;
  const loras = (Array.isArray(dto.loras) ? dto.loras : []).map((lora, index): ResolvedLora => ({
    path: lora.path,
    absolutePath: weights(lora.path, `loras[${index}].path`, roots.loraRoot, 'lora_root'),
    strength: lora.strength ?? DEFAULT_LORA_STRENGTH,
    adapterName: lora.adapter_name ?? stem(String(lora.path)),
  }));
  loras.forEach((lora, index) => {
    const first = loras.findIndex((other) => other.adapterName === lora.adapterName);
    if (first < index) {
      problems.push(
        `${at}.loras[${index}].adapter_name: '${lora.adapterName}' is already used by loras[${first}]; set a different adapter_name`,
      );
    }
  });
  const vaePath = nonEmpty(dto.vae) ? weights(dto.vae, 'vae', roots.modelRoot, 'model_root') : undefined;
  const superres: ResolvedSuperres | undefined = dto.superres && {
    modelPath: weights(dto.superres.model, 'superres.model', roots.modelRoot, 'model_root'),
    scale: dto.superres.scale,
  };
  if (problems.length > before) return undefined;

  const size = dto.default_size === undefined ? undefined : parseImageSize(dto.default_size);
  // Only what the sidecar loads goes into the key: editing a default, the sampler, clip_skip or metadata
  // reloads nothing. Fields added later join only when set, so that existing modes keep their keys.
  const loaded = {
    modelPath,
    configDir: configDir ?? null,
    loras: loras.map((lora) => [lora.absolutePath, lora.strength, lora.adapterName]),
    superres: superres ? [superres.modelPath, superres.scale ?? null] : null,
    ...(dto.prediction_type !== undefined && { predictionType: dto.prediction_type }),
    ...(vaePath !== undefined && { vaePath }),
  };
  const hash = createHash('sha256').update(JSON.stringify(loaded)).digest('hex').slice(0, 12);
  return Object.freeze({
    name,
    key: `${name}-${hash}`,
    model: dto.model,
    modelPath,
    configDir,
    loras: Object.freeze(loras),
    defaultSize: size?.ok ? size.size : DEFAULT_SIZE,
    defaultSteps: dto.default_steps ?? DEFAULT_STEPS,
    defaultGuidance: dto.default_guidance ?? DEFAULT_GUIDANCE,
    metadata: dto.metadata,
    superres,
    scheduler: dto.scheduler ?? DEFAULT_SCHEDULER,
    clipSkip: dto.clip_skip,
    predictionType: dto.prediction_type,
    vae: dto.vae,
    vaePath,
  });
}

/** A weights file: inside its root, and not a pickle unless ALLOW_PICKLE=1. */
function checkedWeights(
  path: string,
  at: string,
  root: string,
  rootName: string,
  allowPickle: boolean,
  problems: string[],
): string {
  const extension = extname(path).toLowerCase();
  if (!allowPickle && PICKLE_EXTENSIONS.has(extension)) {
    problems.push(
      `${at}: ${extension} files are pickles, which can run code when loaded; use .safetensors or set ALLOW_PICKLE=1`,
    );
  }
  return inside(path, at, root, rootName, problems);
}

/** Resolves `path` against `root`; a path that lands outside the root (../, absolute elsewhere) is a problem. */
function inside(path: string, at: string, root: string, rootName: string, problems: string[]): string {
  const absolute = resolve(root, path);
  const fromRoot = relative(root, absolute);
  if (fromRoot === '' || fromRoot === '..' || fromRoot.startsWith(`..${sep}`) || isAbsolute(fromRoot)) {
    problems.push(`${at}: '${path}' must be inside ${rootName} (${root})`);
  }
  return absolute;
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
