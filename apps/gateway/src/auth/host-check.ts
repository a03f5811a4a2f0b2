import { isIP } from 'node:net';

import type { INestApplication } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

import { ForbiddenError } from '../errors/domain.errors.js';
import { renderErrorBody } from '../errors/error-body.renderer.js';
import { classifyError } from '../errors/http-error.table.js';

/** The names a browser uses for this machine: a page on another domain cannot make its requests carry these. */
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

/** A Host header as RFC 9110 allows it: a name or an IPv4 / bracketed IPv6 address, and an optional port. */
const HOST_HEADER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

export interface HostCheckSettings {
  /** The address the server listens on (HOST). */
  readonly listenHost: string;
  /** ALLOWED_HOSTS: names (or addresses) served besides the loopback ones, any port; `*` serves any Host. */
  readonly allowedHosts: readonly string[];
}

/**
 * The Host header check against DNS rebinding (as Ollama's, CVE-2024-28224): a page whose domain is made to resolve
 * to this machine is same-origin with the server, but its requests still carry its own domain in Host. On a
 * loopback address only loopback names and ALLOWED_HOSTS are served; elsewhere ALLOWED_HOSTS when it is set, any
 * Host when it is not (the server is then meant to be reached by other names, and API_KEY guards it).
 */
export class HostCheck {
  private readonly allowed: ReadonlySet<string>;
  private readonly any: boolean;
  /** Whether every Host is served without a check: the absolute URLs we build may then not come from Host. */
  readonly unchecked: boolean;

  constructor(settings: HostCheckSettings) {
    this.allowed = new Set(settings.allowedHosts.map(normalName));
    this.any = this.allowed.has('*');
    this.unchecked = this.any || (!isLoopback(settings.listenHost) && this.allowed.size === 0);
  }

  /** The Host's name (lower case, IPv6 without brackets), or null when the header is missing or malformed. */
  static nameOf(host: string | undefined): string | null {
    if (host === undefined) return null;
    const match = HOST_HEADER.exec(host);
    return match?.[1] === undefined ? null : normalName(match[1]);
  }

  /** Whether a request with this Host header is served. */
  allows(host: string | undefined): boolean {
    if (this.unchecked) return true;
    const name = HostCheck.nameOf(host);
    return name !== null && (LOOPBACK_NAMES.has(name) || this.allowed.has(name));
  }

  /** The request's Host when it passed a real check, so absolute URLs may be built on it; else undefined. */
  checkedHost(request: Request): string | undefined {
    const host = request.get('host');
    return !this.unchecked && this.allows(host) ? host : undefined;
  }

  /** Throws the 403 a refused Host gets: it names the setting that would let it in. */
  check(host: string | undefined): void {
    if (this.allows(host)) return;
    throw new ForbiddenError(
      `this server does not answer to the Host '${(HostCheck.nameOf(host) ?? '').slice(0, 255)}': add the name to ` +
        'ALLOWED_HOSTS (comma-separated) to serve it (loopback names are always served)',
    );
  }
}

/** 127.0.0.0/8, ::1, localhost (and an IPv4-mapped loopback address). */
export function isLoopback(address: string): boolean {
  const name = normalName(address);
  if (name === 'localhost' || name === '::1') return true;
  const v4 = name.replace(/^::ffff:/, '');
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function normalName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

/**
 * Installs the check ahead of every route, Swagger's and the 404s included: called on the app before anything else
 * registers a handler (main.ts, and the test app).
 */
export function useHostCheck(app: INestApplication): void {
  const check = app.get(HostCheck);
  app.use((request: Request, response: Response, next: NextFunction) => {
    try {
      check.check(request.headers.host);
    } catch (error) {
      const failure = classifyError(error);
      response.status(failure.status).json(renderErrorBody(failure, request.path));
      return;
    }
    next();
  });
}
