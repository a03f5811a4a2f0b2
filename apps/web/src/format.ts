import type { GenerateRequest } from './types';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

export function formatTime(iso: string | null): string {
  return iso === null ? '' : new Date(iso).toLocaleTimeString();
}

/** The same request as a shell command: the page's session stands for the key, so the command names $API_KEY. */
export function curlOf(request: GenerateRequest, origin: string, withKey: boolean): string {
  const body = JSON.stringify(request).replace(/'/g, `'\\''`);
  return [
    `curl -X POST ${origin}/generate`,
    ...(withKey ? ['  -H "Authorization: Bearer $API_KEY"'] : []),
    `  -H "Content-Type: application/json"`,
    `  -d '${body}' -o out.png -D -`,
  ].join(' \\\n');
}
