import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FactoryProvider } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

export const SIDECAR_ENDPOINT = Symbol('SIDECAR_ENDPOINT');

export interface SidecarEndpoint {
  /** A grpc-js target: `host:port` or `unix:/path`. */
  readonly address: string;
  /** Set when the gateway starts the sidecar itself: the private folder for its socket, made when it starts. */
  readonly socketDir: string | undefined;
}

/** The private socket folders' names: `modelhost-<gateway pid>-<random>`, so a leftover's owner can be told. */
export const SOCKET_DIR_PATTERN = /^modelhost-(\d+)-[0-9a-f]{16}$/;

/** SIDECAR_ADDR, or a socket in a private folder (not made yet) for a sidecar the gateway starts. */
export const sidecarEndpointProvider: FactoryProvider<SidecarEndpoint> = {
  provide: SIDECAR_ENDPOINT,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig): SidecarEndpoint => {
    if (config.sidecarAddr !== undefined) return { address: config.sidecarAddr, socketDir: undefined };
    const socketDir = join(tmpdir(), `modelhost-${process.pid}-${randomBytes(8).toString('hex')}`);
    return { address: `unix:${join(socketDir, 'modelhost.sock')}`, socketDir };
  },
};
