import type { Request } from 'express';

import type { HostCheck } from '../auth/host-check.js';
import { InvalidRequestError } from '../errors/domain.errors.js';

/**
 * The base of the absolute URLs the server hands out: PUBLIC_URL when set, else the scheme and the Host header the
 * request came with — only when that Host passed the Host check (a loopback name or one of ALLOWED_HOSTS): a URL
 * built on an unchecked Host points wherever the caller said. X-Forwarded-Host and X-Forwarded-Proto are not read:
 * any client can send them, and behind a reverse proxy the one right answer is the proxy's public address, which
 * PUBLIC_URL states once.
 */
export function publicBaseUrl(request: Request, publicUrl: string | undefined, hosts: HostCheck): string {
  if (publicUrl !== undefined) return publicUrl;
  const host = hosts.checkedHost(request);
  if (host === undefined) {
    throw new InvalidRequestError([
      hosts.unchecked
        ? 'response_format: url needs PUBLIC_URL (or ALLOWED_HOSTS naming the Host clients use): this server ' +
          'answers to any Host, so it builds no URL from one'
        : 'response_format: url needs a valid Host header to build the image URLs from (or the server needs PUBLIC_URL)',
    ]);
  }
  // req.protocol is the connection's own (http, or https on a TLS socket) while Express' trust proxy is off.
  return `${request.protocol}://${host}`;
}
