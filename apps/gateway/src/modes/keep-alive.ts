import { registerDecorator, type ValidationArguments, type ValidationOptions } from 'class-validator';

/**
 * A mode's `keep_alive` in modes.yaml (README, "Memory policy"): how long the mode stays on the device after its
 * last use. A duration ("30s", "5m", "1h", "1h30m", "500ms"), a number of seconds, `0` (unloaded after each use)
 * or `-1` (until evicted, the default).
 */
export type KeepAliveParse = { ok: true; ms: number | undefined } | { ok: false; reason: string };

/**
 * The longest keep-alive: 24 days, as the message says (a Node timer can wait at most 2^31 - 1 ms, about 24.8 days;
 * longer ones fire at once).
 */
export const MAX_KEEP_ALIVE_MS = 24 * 86_400_000;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const AMOUNT = '(\\d+(?:\\.\\d+)?)';
/** Each unit at most once, largest first (`1h30m`, not `30m1h` nor `1h1h`). */
const DURATION = new RegExp(`^(?:${AMOUNT}d)?(?:${AMOUNT}h)?(?:${AMOUNT}m)?(?:${AMOUNT}s)?(?:${AMOUNT}ms)?$`);
const UNITS = ['d', 'h', 'm', 's', 'ms'] as const;
const REASON =
  'must be a duration like "30s", "5m", "1h" or "1h30m" (units d, h, m, s, ms, each once, largest first), a ' +
  'number of seconds, 0 (unload after each use) or -1 (until evicted)';

/** The keep-alive in milliseconds; `ms` undefined: until evicted. */
export function parseKeepAlive(value: unknown): KeepAliveParse {
  let ms: number;
  if (typeof value === 'number') {
    if (value === -1) return { ok: true, ms: undefined };
    if (!Number.isFinite(value) || value < 0) return { ok: false, reason: REASON };
    ms = value * 1000;
  } else if (typeof value === 'string') {
    if (value === '-1') return { ok: true, ms: undefined };
    const parts = value === '' ? null : DURATION.exec(value);
    if (!parts) return { ok: false, reason: REASON };
    ms = 0;
    UNITS.forEach((unit, i) => (ms += Number(parts[i + 1] ?? 0) * (UNIT_MS[unit] ?? 0)));
  } else {
    return { ok: false, reason: REASON };
  }
  if (ms > MAX_KEEP_ALIVE_MS) {
    return { ok: false, reason: 'must be at most 24 days ("24d", 2073600 s; a longer wait is -1: until evicted)' };
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
