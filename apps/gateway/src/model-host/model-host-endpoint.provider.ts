import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FactoryProvider } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

export const MODEL_HOST_ENDPOINT = Symbol('MODEL_HOST_ENDPOINT');

export interface ModelHostEndpoint {
  /** A grpc-js target: `host:port` or `unix:/path`. */
  readonly address: string;
  /** Set when the gateway starts the model host itself: the private folder for its socket, made when it starts. */
  readonly socketDir: string | undefined;
}

/** The private socket folders' names: `modelhost-<gateway pid>-<random>`, so a leftover's owner can be told. */
export const SOCKET_DIR_PATTERN = /^modelhost-(\d+)-[0-9a-f]{16}$/;

/** SIDECAR_ADDR, or a socket in a private folder (not made yet) for a model host the gateway starts. */
export const modelHostEndpointProvider: FactoryProvider<ModelHostEndpoint> = {
  provide: MODEL_HOST_ENDPOINT,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig): ModelHostEndpoint => {
    if (config.modelHostAddr !== undefined) return { address: config.modelHostAddr, socketDir: undefined };
    const socketDir = join(tmpdir(), `modelhost-${process.pid}-${randomBytes(8).toString('hex')}`);
    return { address: `unix:${join(socketDir, 'modelhost.sock')}`, socketDir };
  },
};
