import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { SidecarUnavailableError } from '../errors/domain.errors.js';
import { RegistryService } from '../registry/registry.service.js';
import { SIDECAR_ENDPOINT, type SidecarEndpoint } from './sidecar-endpoint.provider.js';
import { SidecarRepository } from './sidecar.repository.js';

const KILL_AFTER_MS = 10_000;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
}

/**
 * Runs the sidecar as a child process when SIDECAR_ADDR is unset:
 * `<SIDECAR_PYTHON> -m modelhost serve --listen unix:<private dir>/modelhost.sock`.
 */
@Injectable()
export class SidecarProcessService implements OnModuleDestroy {
  private readonly logger = new Logger('Sidecar');
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> | undefined;
  private stopping = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SIDECAR_ENDPOINT) private readonly endpoint: SidecarEndpoint,
    private readonly repository: SidecarRepository,
    private readonly registry: RegistryService,
  ) {}

  /** Starts the sidecar unless SIDECAR_ADDR names one already running; called once, at application start. */
  start(): void {
    const { socketDir, address } = this.endpoint;
    if (socketDir === undefined || this.child) return;
    // mkdir (not mkdtemp) under a random name: atomic, fails rather than follow anything already there.
    mkdirSync(socketDir, { mode: 0o700 });
    const python = this.config.sidecarPython;
    // --exit-with-parent: a gateway killed without its shutdown hooks must not leave a sidecar holding the GPU.
    const args = ['-m', 'modelhost', 'serve', '--listen', address, '--exit-with-parent'];
    this.logger.log(`starting the model host: ${python} ${args.join(' ')}`);
    const child = spawn(python, args, { cwd: process.cwd(), env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
    });
    this.forward(child.stdout);
    this.forward(child.stderr);
    void this.exited.then((exit) => this.onExit(exit));
  }

  /** Resolves once the sidecar serves; fails early if the sidecar the gateway started dies first. */
  async waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.exited) return this.repository.waitForReady(timeoutMs, signal);
    const stopWaiting = new AbortController();
    const onAbort = (): void => stopWaiting.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([
        this.repository.waitForReady(timeoutMs, stopWaiting.signal),
        this.exited.then((exit) => {
          throw new SidecarUnavailableError(`the model host ${describe(exit)} before it was ready`);
        }),
      ]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stopWaiting.abort();
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    const { child, exited } = this;
    if (child && exited && child.exitCode === null && child.signalCode === null) {
      this.logger.log('stopping the model host');
      child.kill('SIGTERM');
      const killer = setTimeout(() => {
        this.logger.warn(`the model host did not stop within ${KILL_AFTER_MS / 1000} s: killing it`);
        child.kill('SIGKILL');
      }, KILL_AFTER_MS);
      await exited;
      clearTimeout(killer);
    }
    if (this.endpoint.socketDir !== undefined) rmSync(this.endpoint.socketDir, { recursive: true, force: true });
  }

  private forward(stream: Readable | null): void {
    if (stream) createInterface({ input: stream }).on('line', (line) => this.logger.log(`[sidecar] ${line}`));
  }

  /** Restarting is a later step; for now an unexpected exit is logged and nothing is resident any more. */
  private onExit(exit: Exit): void {
    if (this.stopping) {
      this.logger.log(`the model host ${describe(exit)}`);
      return;
    }
    this.logger.error(`the model host ${describe(exit)} unexpectedly`);
    this.registry.clear();
  }
}

function describe(exit: Exit): string {
  if (exit.error) return `could not be started (${exit.error.message})`;
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}
