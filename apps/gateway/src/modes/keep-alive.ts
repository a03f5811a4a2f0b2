import { registerDecorator, type ValidationArguments, type ValidationOptions } from 'class-validator';

/**
 * A mode's `keep_alive` in modes.yaml (README, "Memory policy"): how long the mode stays on the device after its
 * last use. A duration ("30s", "5m", "1h", "1h30m", "500ms"), a number of seconds, `0` (unloaded after each use)
 * or `-1` (until evicted, the default).
 */
export type KeepAliveParse = { ok: true; ms: number | undefined } | { ok: false; reason: string };

/** The longest a Node timer can wait (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_KEEP_ALIVE_MS = 2 ** 31 - 1;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const REASON =
  'must be a duration like "30s", "5m", "1h" or "1h30m", a number of seconds, 0 (unload after each use) or ' +
  '-1 (until evicted)';

/** The keep-alive in milliseconds; `ms` undefined: until evicted. */
export function parseKeepAlive(value: unknown): KeepAliveParse {
  let ms: number;
  if (typeof value === 'number') {
    if (value === -1) return { ok: true, ms: undefined };
    if (!Number.isFinite(value) || value < 0) return { ok: false, reason: REASON };
    ms = value * 1000;
  } else if (typeof value === 'string') {
    if (value === '-1') return { ok: true, ms: undefined };
    if (!DURATION.test(value)) return { ok: false, reason: REASON };
    ms = 0;
    for (const [, amount, unit] of value.matchAll(PART)) ms += Number(amount) * (UNIT_MS[unit ?? 's'] ?? 0);
  } else {
    return { ok: false, reason: REASON };
  }
  if (ms > MAX_KEEP_ALIVE_MS) {
    return { ok: false, reason: 'must be at most 24 days (a longer wait is -1: until evicted)' };
  }
  return { ok: true, ms: Math.round(ms) };
}

/** class-validator decorator for keep_alive; its message says what is wrong. */
export function IsKeepAlive(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) => {
    registerDecorator({
      name: 'isKeepAlive',
      target: target.constructor,
      propertyName: String(propertyName),
      options,
      validator: {
        validate: (value: unknown) => parseKeepAlive(value).ok,
        defaultMessage: (args?: ValidationArguments) => {
          const parsed = parseKeepAlive(args?.value);
          return parsed.ok ? 'is not a valid keep_alive' : parsed.reason;
        },
      },
    });
  };
}
