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

/** The first problem of `data`, or undefined when there is none. Paths are YAML-style: `modes.a.loras[1]`. */
export function inspectPlainData(data: unknown, limits: PlainDataLimits): PlainDataProblem | undefined {
  const pending: { value: unknown; path: string; depth: number }[] = [{ value: data, path: '', depth: 0 }];
  let nodes = 1;
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value, path, depth } = item;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return { kind: 'lone_surrogate', path };
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((child, index) => [`${path}[${index}]`, child])
      : Object.entries(value).map(([key, child]) => [path === '' ? key : `${path}.${key}`, child]);
    if (entries.length === 0) continue;
    if (depth + 1 > limits.maxDepth) return { kind: 'too_deep', path };
    nodes += entries.length;
    if (nodes > limits.maxNodes) return { kind: 'too_many_nodes' };
    if (!Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        const where = path === '' ? key : `${path}.${key}`;
        if (LONE_SURROGATE.test(key)) return { kind: 'lone_surrogate', path: where };
        if (RESERVED_KEYS.has(key) && (path !== limits.namesAt || key === '__proto__')) {
          return { kind: 'reserved_key', path: where, key };
        }
      }
    }
    for (const [childPath, child] of entries) pending.push({ value: child, path: childPath, depth: depth + 1 });
  }
  return undefined;
}
