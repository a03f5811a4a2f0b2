import { hash } from 'node:crypto';

/**
 * The key a mode is loaded under on the model host: `<mode name>-<12 hex digits of a SHA-256 of what it loads>`.
 * The only place a key is built (modeKey) and the only place one is read (modeOfKey); the model host treats
 * keys as opaque ids. docs/ARCHITECTURE.md, "Keys", says why the hash covers what it covers.
 */
const HASH_DIGITS = 12;
const KEY_SUFFIX = new RegExp(`-[0-9a-f]{${HASH_DIGITS}}$`);

/** `loaded`: the mode's load-time definition, JSON-serialisable; equal definitions give equal keys. */
export function modeKey(name: string, loaded: unknown): string {
  // The one-shot hash: a Hash object per mode is half the cost of a key (a 1,000-mode file makes 1,000 keys).
  return `${name}-${hash('sha256', JSON.stringify(loaded)).slice(0, HASH_DIGITS)}`;
}

/** The mode name a key was made for. */
export function modeOfKey(key: string): string {
  return key.replace(KEY_SUFFIX, '');
}
