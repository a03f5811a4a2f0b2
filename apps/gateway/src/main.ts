import 'reflect-metadata';

import type { AddressInfo } from 'node:net';

import { Logger, ShutdownSignal } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';

import { AppModule } from './app.module.js';
import { useHostCheck } from './auth/host-check.js';
import { loadConfig } from './config/app-config.js';
import { GatewayLogger } from './logging/gateway-logger.js';
import { HostsService } from './model-host/hosts.service.js';
import { setupOpenApi } from './openapi/openapi.js';
import { WorkerPool } from './queue/worker-pool.service.js';

/** Set once Nest has built the app: a start that fails after that has a model host to stop. */
let started: NestExpressApplication | undefined;

async function bootstrap(): Promise<void> {
  const config = loadConfig(process.env);
  // abortOnError: false lets a startup error (bad modes.yaml, say) reach the catch below instead of aborting.
  // bufferLogs: the lines Nest writes while it starts wait for the JSON logger rather than going out as plain text.
  const app = (started = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    abortOnError: false,
    bufferLogs: true,
  }));
  app.useLogger(app.get(GatewayLogger));
  app.disable('x-powered-by');
  // First of all handlers: a Host this server does not answer to gets nothing else (DNS rebinding).
  useHostCheck(app);
  if (config.corsOrigins.length > 0) {
    app.enableCors({
      origin: [...config.corsOrigins],
      allowedHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'X-Request-Id'],
      exposedHeaders: ['Retry-After', 'X-Request-Id', 'X-Mode', 'X-Seed', 'X-SuperRes'],
    });
  }
  // Registered before Nest's own handlers, so it runs first: from the signal on, /ready and new work answer 503
  // while the shutdown hooks let the running job finish (docs/OPERATIONS.md).
  const pool = app.get(WorkerPool);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => pool.beginShutdown());
  // SIGHUP is left alone: it means "reload modes.yaml". After a clean shutdown the exit code is 0.
  app.enableShutdownHooks([ShutdownSignal.SIGTERM, ShutdownSignal.SIGINT], { useProcessExit: true });
  setupOpenApi(app);
  await app.listen(config.port, config.host);
  // The address the socket really bound (PORT=0 picks a port; Nest's getUrl() rewrites it as a loopback name):
  // test harnesses read the port from this line.
  new Logger('Bootstrap').log(`gateway listening on ${boundUrl(app.getHttpServer().address())}`);
}

function boundUrl(address: AddressInfo | string | null): string {
  if (address === null || typeof address === 'string') return String(address);
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** What went wrong at start, said so that the next step is clear. */
function startFailure(error: unknown): string {
  const { code, port, address } = error as { code?: unknown; port?: unknown; address?: unknown };
  if (code === 'EADDRINUSE') {
    return (
      `port ${String(port)} on ${String(address)} is already in use (another gateway?): stop what holds it, or ` +
      'choose another port with PORT=<port> (PORT=0 picks a free one)'
    );
  }
  return error instanceof Error ? error.message : String(error);
}

bootstrap().catch((error: unknown) => {
  new Logger('Bootstrap').error(startFailure(error));
  // process.exit skips Nest's shutdown hooks, and the model host would only notice the gateway is gone later: a start
  // that failed has nothing running to let finish, so it goes now.
  started?.get(HostsService, { strict: false }).killNow();
  process.exit(1);
});
