import { randomBytes } from 'node:crypto';

import type { Request } from 'express';

/** The cookie a browser holds after `POST /api/session`: an opaque token, never the key. */
export const SESSION_COOKIE = 'modelhost_session';
/** A session ends this long after its login; the page then asks for the key again. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Sessions held at once; the oldest goes first past this, so logins cannot grow the map without bound. */
export const SESSIONS_MAX = 1000;

/**
 * Browser sessions: a random token (the cookie's value) mapped to the key its login presented, in this process's
 * memory. Browsers cannot put a header on an EventSource or an <img>, so the key guard takes the session's key
 * as if the request had sent it in X-API-Key. A restart forgets every session (the page asks for the key again).
 */
export class Sessions {
  /** Insertion-ordered: the first entry is the oldest login. */
  private readonly byToken = new Map<string, { key: string; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  create(key: string): string {
    const token = randomBytes(32).toString('base64url');
    this.byToken.set(token, { key, expiresAt: this.now() + SESSION_TTL_MS });
    while (this.byToken.size > SESSIONS_MAX) {
      const oldest = this.byToken.keys().next().value as string;
      this.byToken.delete(oldest);
    }
    return token;
  }

  /** The key behind the request's session cookie; undefined without one, or when it is unknown or expired. */
  keyOf(request: Request): string | undefined {
    const token = sessionToken(request);
    if (token === undefined) return undefined;
    const session = this.byToken.get(token);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.now()) {
      this.byToken.delete(token);
      return undefined;
    }
    return session.key;
  }

  end(request: Request): void {
    const token = sessionToken(request);
    if (token !== undefined) this.byToken.delete(token);
  }

  get size(): number {
    return this.byToken.size;
  }
}

/** The session cookie's value from the Cookie header (no cookie parser: this is the one cookie the server reads). */
export function sessionToken(request: Request): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** The Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it). */
export function sessionCookie(token: string, secure: boolean): string {
  return cookie(token, Math.floor(SESSION_TTL_MS / 1000), secure);
}

/** The Set-Cookie value that removes the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return cookie('', 0, secure);
}

function cookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}
