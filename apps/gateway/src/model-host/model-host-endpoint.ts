import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import type { Logger } from '@nestjs/common';

import type { HostSpec } from './host-spec.js';
import { removeStaleSocketDirs } from './stale-socket-dirs.js';

/** Where one model host listens. */
export interface ModelHostEndpoint {
  /** A grpc-js target: `host:port` or `unix:/path`. */
  readonly address: string;
  /** Set when the gateway starts the model host itself: the private folder its socket is in. */
  readonly socketDir: SocketDir | undefined;
}

/** The private socket folders' names: `modelhost-<gateway pid>-<random>`, so a leftover's owner can be told. */
export const SOCKET_DIR_PATTERN = /^modelhost-(\d+)-[0-9a-f]{16}$/;

/**
 * The gateway's private folder for the sockets of the model hosts it starts, one for all of them: made (and the
 * folders of gateways that are gone removed) before the first start, removed once the last one stopped.
 */
export class SocketDir {
  readonly path = join(tmpdir(), `modelhost-${process.pid}-${randomBytes(8).toString('hex')}`);
  private made = false;

  constructor(private readonly logger?: Logger) {}

  ensure(): void {
    if (this.made) return;
    removeStaleSocketDirs(dirname(this.path), this.logger);
    // mkdir (not mkdtemp) under a random name: atomic, fails rather than follow anything already there.
    mkdirSync(this.path, { mode: 0o700 });
    this.made = true;
    // process.exit() and a crash skip the shutdown hooks but not this; only SIGKILL and the like escape it.
    process.once('exit', this.remove);
  }

  readonly remove = (): void => {
    if (!this.made) return;
    rmSync(this.path, { recursive: true, force: true });
    process.removeListener('exit', this.remove);
    this.made = false;
  };
}

/** The spec's address, or a socket of its own (by its index) in the gateway's private folder. */
export function endpointOf(spec: HostSpec, index: number, socketDir: SocketDir): ModelHostEndpoint {
  if (spec.addr !== undefined) return { address: spec.addr, socketDir: undefined };
  return { address: `unix:${join(socketDir.path, `modelhost-${index}.sock`)}`, socketDir };
}
