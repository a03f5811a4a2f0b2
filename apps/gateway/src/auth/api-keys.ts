import { createHash, timingSafeEqual } from 'node:crypto';

import type { Request } from 'express';

import { ForbiddenError, UnauthorizedError } from '../errors/domain.errors.js';
import type { Access } from './access.decorator.js';
import type { Sessions } from './sessions.js';

export interface ApiKeySettings {
  /** API_KEY: empty leaves every route open. */
  readonly apiKeys: readonly string[];
  /** ADMIN_API_KEY: empty lets any API key call admin routes. */
  readonly adminApiKeys: readonly string[];
  readonly metricsPublic: boolean;
}

/**
 * A request's caller: `id` names the key it came with (the start of its SHA-256, never the key) or `anonymous`;
 * `admin` says whether it may see and cancel everyone's jobs.
 */
export interface Caller {
  readonly id: string;
  readonly admin: boolean;
}

/**
 * Checks the key a request presents. Keys are compared as SHA-256 digests with timingSafeEqual, so neither a key's
 * length nor its first wrong byte shows in the time an answer takes, and every configured key is compared.
 */
export class ApiKeys {
  private readonly keys: readonly Buffer[];
  private readonly adminKeys: readonly Buffer[];

  /** `sessions`: the browser sessions whose cookie counts as the key its login presented. */
  constructor(
    private readonly settings: ApiKeySettings,
    private readonly sessions?: Sessions,
  ) {
    this.keys = settings.apiKeys.map(digest);
    this.adminKeys = settings.adminApiKeys.map(digest);
  }

  /** No key configured at all: the server is open. */
  get open(): boolean {
    return this.keys.length === 0 && this.adminKeys.length === 0;
  }

  /**
   * Who is calling, for what they may see of others' work: an admin when the key is an ADMIN_API_KEY key, or when
   * the admin routes need no more than this caller has (no ADMIN_API_KEY: any valid key; no key at all: anyone).
   */
  callerOf(request: Request): Caller {
    const presented = this.presentedKeys(request).map(digest);
    const admin = presented.find((key) => matchesAny(key, this.adminKeys));
    if (admin) return { id: `admin:${admin.toString('hex').slice(0, 16)}`, admin: true };
    const key = presented.find((candidate) => matchesAny(candidate, this.keys));
    const adminRoutesOpen = this.adminKeys.length === 0 && (this.keys.length === 0 || key !== undefined);
    return { id: key ? `key:${key.toString('hex').slice(0, 16)}` : 'anonymous', admin: adminRoutesOpen };
  }

  /** Throws UnauthorizedError or ForbiddenError when the request may not reach a route of this access level. */
  check(request: Request, access: Access): void {
    if (access === 'public' || (access === 'metrics' && this.settings.metricsPublic)) return;
    const needsAdmin = access === 'admin' && this.adminKeys.length > 0;
    if (!needsAdmin && this.keys.length === 0) return;
    const presented = this.presentedKeys(request).map(digest);
    const isAdmin = presented.some((key) => matchesAny(key, this.adminKeys));
    if (isAdmin) return;
    const isKey = presented.some((key) => matchesAny(key, this.keys));
    if (needsAdmin && isKey) throw new ForbiddenError('this route needs an admin key (ADMIN_API_KEY)');
    if (!isKey) {
      throw new UnauthorizedError(
        presented.length === 0
          ? 'an API key is required: send "Authorization: Bearer <key>" or "X-API-Key: <key>"'
          : 'the API key is not valid',
      );
    }
  }

  /** Whether `key` is one of API_KEY or ADMIN_API_KEY (a login), and whether it is an admin's. */
  verify(key: string): { valid: boolean; admin: boolean } {
    const presented = digest(key);
    const admin = matchesAny(presented, this.adminKeys);
    const valid = matchesAny(presented, this.keys) || admin;
    return { valid, admin: admin || (valid && this.adminKeys.length === 0) };
  }

  /** Both header forms and the session cookie; a request may send several, and any may hold the key. */
  private presentedKeys(request: Request): string[] {
    const keys = headerKeys(request);
    const session = this.sessions?.keyOf(request);
    if (session !== undefined) keys.push(session);
    return keys;
  }
}

/** Both header forms; a request may send both, and either may hold the key. */
function headerKeys(request: Request): string[] {
  const keys: string[] = [];
  const authorization = request.headers.authorization;
  const bearer = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  if (bearer?.[1]) keys.push(bearer[1]);
  const header = request.headers['x-api-key'];
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    if (value.trim()) keys.push(value.trim());
  }
  return keys;
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Compares against every key, without stopping at the first match. */
function matchesAny(key: Buffer, keys: readonly Buffer[]): boolean {
  let found = false;
  for (const candidate of keys) found = timingSafeEqual(key, candidate) || found;
  return found;
}
