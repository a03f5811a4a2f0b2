import type { Request } from 'express';

import { InvalidRequestError } from '../errors/domain.errors.js';

/** A Host header as RFC 9110 allows it: a name or an IPv4 / bracketed IPv6 address, and a port. */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/**
 * The base of the absolute URLs the server hands out: PUBLIC_URL when set, else the scheme and Host header the
 * request came with. X-Forwarded-Host and X-Forwarded-Proto are not read: any client can send them, and behind a
 * reverse proxy the one right answer is the proxy's public address, which PUBLIC_URL states once.
 */
export function publicBaseUrl(request: Request, publicUrl: string | undefined): string {
  if (publicUrl !== undefined) return publicUrl;
  const host = request.get('host');
  if (host === undefined || !HOST.test(host)) {
    throw new InvalidRequestError([
      'response_format: url needs a valid Host header to build the image URLs from (or the server needs PUBLIC_URL)',
    ]);
  }
  // req.protocol is the connection's own (http, or https on a TLS socket) while Express' trust proxy is off.
  return `${request.protocol}://${host}`;
}
