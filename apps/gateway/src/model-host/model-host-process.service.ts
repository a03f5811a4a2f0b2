import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

import { Logger } from '@nestjs/common';

import type { AppConfig } from '../config/app-config.js';
import { ModelHostUnavailableError } from '../errors/domain.errors.js';
import type { HostSpec } from './host-spec.js';
import type { ModelHost, ModelHostProcess } from './model-host.js';
import type { ModelHostEndpoint } from './model-host-endpoint.js';

/**
 * How long the model host itself may take past its --grace: it waits up to 10 s for cancelled calls to end, then
 * stops its server (sidecar/src/modelhost/server.py). SIGKILL comes only after --grace and this.
 */
const MODEL_HOST_STOP_MARGIN_MS = 15_000;

/** The gateway's log levels a model host line can have. */
export type ForwardedLevel = 'debug' | 'log' | 'warn' | 'error';

const LEVEL_OF_PYTHON: Readonly<Record<string, ForwardedLevel>> = {
  DEBUG: 'debug',
  INFO: 'log',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
};

/** The model host's log format (`modelhost/__main__.py`): "2026-01-01 12:00:00,123 WARNING name: message". */
const PYTHON_RECORD = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+?): (.*)$/s;

/** A line of the model host's log read back: its level, the Python logger and the message; undefined: not a record. */
export function parseModelHostLine(line: string): { level: ForwardedLevel; logger: string; msg: string } | undefined {
  const match = PYTHON_RECORD.exec(line);
  if (!match) return undefined;
  const [, level = 'INFO', logger = '', msg = ''] = match;
  return { level: LEVEL_OF_PYTHON[level] ?? 'log', logger, msg };
}

/** Told when the model host goes away unexpectedly; the text says how. */
export type ModelHostLossListener = (reason: string) => void;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
}

/**
 * Runs one model host as a child process, for a host the gateway starts itself (not one at SIDECAR_ADDR(S)):
 * `<SIDECAR_PYTHON> -m modelhost serve --listen unix:<private dir>/modelhost-<n>.sock --grace <SHUTDOWN_GRACE_MS in
 * s> [--device <device>]`.
 *
 * It only runs the process: its ModelHostConnection decides when to start it (again) and what a loss means. It is
 * stopped (by HostsService) after the WorkerPool has drained: SIGTERM, then SIGKILL only once the model host's own
 * grace and stop margin have passed. The private folder is HostsService's (SocketDir).
 */
export class ModelHostProcessService implements ModelHostProcess {
  private readonly logger = new Logger('ModelHost');
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> | undefined;
  private stopping = false;
  private readonly lossListeners: ModelHostLossListener[] = [];

  constructor(
    private readonly config: AppConfig,
    private readonly spec: HostSpec,
    private readonly endpoint: ModelHostEndpoint,
    private readonly client: ModelHost,
  ) {}

  /** Starts the model host unless it runs, or it is one started elsewhere. */
  start(): void {
    const { socketDir } = this.endpoint;
    if (socketDir === undefined || this.stopping || this.pid !== undefined) return;
    socketDir.ensure();
    this.spawnChild();
  }

  /** True when the gateway runs the model host itself (and so restarts it when it dies). */
  get managed(): boolean {
    return this.endpoint.socketDir !== undefined;
  }

  /** The running model host's process id, when the gateway started it. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** `listener` is called each time the model host the gateway started ends unexpectedly. */
  onLost(listener: ModelHostLossListener): void {
    this.lossListeners.push(listener);
  }

  private spawnChild(): void {
    const { address } = this.endpoint;
    rmSync(address.replace(/^unix:/, ''), { force: true });
    const python = this.config.modelHostPython;
    // --exit-with-parent: a gateway killed without its shutdown hooks must not leave a model host holding the GPU.
    // --grace: the model host's own grace for a running call equals the gateway's, which drains its job first.
    const args = ['-m', 'modelhost', 'serve', '--listen', address, '--exit-with-parent'];
    args.push('--grace', String(this.config.shutdownGraceMs / 1000));
    if (this.spec.device !== undefined) args.push('--device', this.spec.device);
    this.logger.log(`starting the model host: ${python} ${args.join(' ')}`);
    const child = spawn(python, args, {
      cwd: process.cwd(),
      env: modelHostEnv(process.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    if (child.pid !== undefined) this.logger.log(`model host started (pid ${child.pid})`);
    this.exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
    });
    this.forward(child.stdout);
    this.forward(child.stderr);
    void this.exited.then((exit) => this.onExit(exit));
  }

  /** Resolves once the model host serves; fails early if the model host the gateway started dies first. */
  async waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.exited) return this.client.waitForReady(timeoutMs, signal);
    const stopWaiting = new AbortController();
    const onAbort = (): void => stopWaiting.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([
        this.client.waitForReady(timeoutMs, stopWaiting.signal),
        this.exited.then((exit) => {
          throw new ModelHostUnavailableError(`the model host ${describe(exit)} before it was ready`);
        }),
      ]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stopWaiting.abort();
    }
  }

  /** Stops the process, if it runs: SIGTERM, SIGKILL past the model host's grace and the stop margin. */
  async stop(): Promise<void> {
    this.stopping = true;
    const { child, exited } = this;
    if (child && exited && child.exitCode === null && child.signalCode === null) {
      this.logger.log('stopping the model host');
      child.kill('SIGTERM');
      const killAfterMs = this.config.shutdownGraceMs + MODEL_HOST_STOP_MARGIN_MS;
      const killer = setTimeout(() => {
        this.logger.warn(`the model host did not stop within ${killAfterMs / 1000} s: killing it`);
        child.kill('SIGKILL');
      }, killAfterMs);
      await exited;
      clearTimeout(killer);
    }
  }

  /** Ends the model host at once (SIGKILL), for a gateway whose own start failed: it has no work to let finish. */
  killNow(): void {
    this.stopping = true;
    if (this.pid !== undefined) this.child?.kill('SIGKILL');
  }

  /**
   * Each line at the level the model host logged it at, so that LOG_LEVEL=warn still shows its warnings. A line that
   * is not a record (a traceback's, a library's raw print) keeps the level of the record before it on that stream.
   */
  private forward(stream: Readable | null): void {
    if (!stream) return;
    let level: ForwardedLevel = 'log';
    createInterface({ input: stream }).on('line', (line) => {
      // Blank lines are what is left of progress bars redrawn with carriage returns.
      if (!line.trim()) return;
      const record = parseModelHostLine(line);
      if (record) level = record.level;
      // Its own tags, so that each model host's lines can be told apart (and filtered) in the one stream.
      const fields = record
        ? { source: 'model-host', host: this.spec.id, logger: record.logger, msg: record.msg }
        : { source: 'model-host', host: this.spec.id, msg: line };
      this.logger[level](fields);
    });
  }

  /** An unexpected exit: told to the listeners (the connection decides what follows). */
  private onExit(exit: Exit): void {
    if (this.stopping) {
      this.logger.log(`the model host ${describe(exit)}`);
      return;
    }
    const reason = `the model host ${describe(exit)} unexpectedly`;
    this.logger.error(reason);
    for (const listener of this.lossListeners) listener(reason);
  }
}

function describe(exit: Exit): string {
  if (exit.error) return `could not be started (${exit.error.message})`;
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/** The gateway's own secrets: the model host needs none of them, and a child's environment is readable in /proc. */
const GATEWAY_SECRETS = ['API_KEY', 'ADMIN_API_KEY'];

/** The model host's environment: the gateway's, less its keys. */
export function modelHostEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of GATEWAY_SECRETS) delete copy[name];
  return copy;
}
