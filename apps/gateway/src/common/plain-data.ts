/**
 * Checks data parsed from outside (a JSON body, the modes file) before anything copies or converts it.
 *
 * A YAML alias is a shared reference, so a small parsed document can stand for billions of values once a deep
 * copy (class-transformer, a JSON round trip) expands it; deep nesting overflows the recursive converters;
 * `__proto__` and `constructor` keys change what an object is when assigned; a lone UTF-16 surrogate cannot be
 * encoded for the model host. This walk visits every value as such a copy would, alias uses included, without
 * recursion, and stops at the first problem, so its cost is bounded by `maxNodes`.
 */
export interface PlainDataLimits {
  /** The most values (mappings, lists and scalars) the expanded data may hold. */
  readonly maxNodes: number;
  /** The deepest nesting of mappings and lists; the top level is depth 0. */
  readonly maxDepth: number;
  /** A path whose keys are names, not fields (`modes`): `constructor` is a name like any other there. */
  readonly namesAt?: string;
}

export type PlainDataProblem =
  | { readonly kind: 'too_many_nodes' }
  | { readonly kind: 'too_deep'; readonly path: string }
  | { readonly kind: 'reserved_key'; readonly path: string; readonly key: string }
  | { readonly kind: 'lone_surrogate'; readonly path: string };

/** Keys that, assigned to an object, replace its prototype or its class. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A lone half of a UTF-16 surrogate pair: a `u` regex sees a well-formed pair as one code point, not Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

/** A value still to visit; its path is spelled out only for a problem (a 1,000-mode file has ~15,000 values). */
interface Pending {
  readonly value: unknown;
  readonly parent: Pending | undefined;
  readonly key: string | number;
  readonly depth: number;
}

/** The first problem of `data`, or undefined when there is none. Paths are YAML-style: `modes.a.loras[1]`. */
export function inspectPlainData(data: unknown, limits: PlainDataLimits): PlainDataProblem | undefined {
  const pending: Pending[] = [{ value: data, parent: undefined, key: '', depth: 0 }];
  let nodes = 1;
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value, depth } = item;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return { kind: 'lone_surrogate', path: pathOf(item) };
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    const keys = Array.isArray(value) ? undefined : Object.keys(value);
    const size = keys === undefined ? (value as unknown[]).length : keys.length;
    if (size === 0) continue;
    if (depth + 1 > limits.maxDepth) return { kind: 'too_deep', path: pathOf(item) };
    nodes += size;
    if (nodes > limits.maxNodes) return { kind: 'too_many_nodes' };
    if (keys === undefined) {
      (value as unknown[]).forEach((child, index) =>
        pending.push({ value: child, parent: item, key: index, depth: depth + 1 }),
      );
      continue;
    }
    for (const key of keys) {
      if (LONE_SURROGATE.test(key)) return { kind: 'lone_surrogate', path: childPath(pathOf(item), key) };
      if (RESERVED_KEYS.has(key) && (key === '__proto__' || pathOf(item) !== limits.namesAt)) {
        return { kind: 'reserved_key', path: childPath(pathOf(item), key), key };
      }
    }
    const mapping = value as Record<string, unknown>;
    for (const key of keys) pending.push({ value: mapping[key], parent: item, key, depth: depth + 1 });
  }
  return undefined;
}

function pathOf(item: Pending): string {
  const keys: (string | number)[] = [];
  for (let at = item; at.parent !== undefined; at = at.parent) keys.push(at.key);
  return keys.reduceRight<string>((path, key) => childPath(path, key), '');
}

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}
