/** Query parameters whose value may be a credential: keys, tokens, passwords, signatures, sessions. */
const SECRET_NAME = /key|token|secret|pass|auth|sig|session|cookie|credential|bearer/i;

export const REDACTED = '[redacted]';

/**
 * A request URL fit for a log: the value of every key-like query parameter replaced. The server never reads a key
 * from the query string, but a client may still send one there (`?api_key=...`), and the log is the one place it
 * would stay. The rest of the URL is kept byte for byte.
 */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const at = url.indexOf('?');
  if (at < 0) return url;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq >= 0 && SECRET_NAME.test(decodeName(name)) ? `${name}=${REDACTED}` : pair;
    })
    .join('&');
  return `${url.slice(0, at)}?${query}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * A text fit for an unauthenticated answer: each absolute path shortened to its last part (`…/name`), so that a
 * public probe learns what failed but not how the machine's folders are laid out. URLs are left alone.
 */
export function withoutAbsolutePaths(text: string): string {
  return text.replace(
    /(?<![\w./])(?<!:\/)\/(?:[^\s'"`,;:()[\]{}<>/]+\/)+([^\s'"`,;:()[\]{}<>/]+)/g,
    (_whole, last: string) => `…/${last}`,
  );
}
