import { status as Status, type ServiceError } from '@grpc/grpc-js';

import {
  GenerationTimeoutError,
  InvalidRequestError,
  JobCancelledError,
  ModeSwitchTimeoutError,
  ModelFileMissingError,
  ModelLoadError,
  ModelNotLoadedError,
  OutOfMemoryError,
  PinnedModelsError,
  ModelHostError,
  ModelHostUnavailableError,
  TaskFailedError,
  UnknownTaskError,
} from '../errors/domain.errors.js';
import { modeOfKey } from '../modes/mode-key.js';

export type ModelHostRpc = 'load' | 'prefetch' | 'unload' | 'generate' | 'memory' | 'health' | 'task' | 'roots';

/** What the failed call was about: the mode being loaded, or the key used; and the deadline it had. */
export interface CallContext {
  readonly rpc: ModelHostRpc;
  readonly subject: string;
  readonly timeoutMs: number;
}

interface Rule {
  readonly code: Status;
  /** Undefined: any call. */
  readonly rpc?: ModelHostRpc;
  readonly toError: (detail: string, context: CallContext) => Error;
}

/** The one table from gRPC status codes to domain errors; the first matching row wins. */
export const GRPC_ERROR_TABLE: readonly Rule[] = [
  // The model host's PinnedModelsError: "... fits only by evicting pinned model(s): <key>, <key>; ...".
  {
    code: Status.FAILED_PRECONDITION,
    rpc: 'load',
    toError: (detail, c) => new PinnedModelsError(c.subject, pinnedModes(detail), detail),
  },
  // The model host's ModelFileNotFoundError ("model file not found: <path>"): the file went away after the gateway
  // looked (ModelFilesProbe), so the same 409 as the gateway's own check.
  {
    code: Status.NOT_FOUND,
    rpc: 'load',
    toError: (detail, c) => new ModelFileMissingError(c.subject, detail.replace(/^model file not found: /, '')),
  },
  { code: Status.INVALID_ARGUMENT, rpc: 'load', toError: (detail, c) => new ModelLoadError(c.subject, detail) },
  { code: Status.DEADLINE_EXCEEDED, rpc: 'load', toError: (_, c) => new ModeSwitchTimeoutError(c.subject) },
  { code: Status.NOT_FOUND, rpc: 'task', toError: (detail) => new UnknownTaskError(detail) },
  { code: Status.FAILED_PRECONDITION, rpc: 'task', toError: (detail) => new TaskFailedError(detail) },
  { code: Status.DEADLINE_EXCEEDED, rpc: 'generate', toError: (_, c) => new GenerationTimeoutError(c.timeoutMs) },
  {
    code: Status.DEADLINE_EXCEEDED,
    toError: (_, c) => new ModelHostUnavailableError(`no answer to ${c.rpc} within ${c.timeoutMs} ms`),
  },
  { code: Status.INVALID_ARGUMENT, toError: (detail) => new InvalidRequestError([detail]) },
  { code: Status.RESOURCE_EXHAUSTED, toError: (detail) => new OutOfMemoryError(detail) },
  { code: Status.FAILED_PRECONDITION, toError: (detail) => new ModelNotLoadedError(detail) },
  { code: Status.NOT_FOUND, toError: (detail) => new ModelNotLoadedError(detail) },
  { code: Status.CANCELLED, toError: (detail) => new JobCancelledError(detail) },
  { code: Status.UNAVAILABLE, toError: (detail) => new ModelHostUnavailableError(detail) },
  // A task's own bug or an unexpected failure: the model host logged the traceback.
  { code: Status.INTERNAL, toError: (detail) => new ModelHostError(`INTERNAL: ${detail}`) },
];

/** The modes of the keys a PinnedModelsError of the model host names. */
function pinnedModes(detail: string): string[] {
  const keys = /pinned model\(s\): ([^;]+)/.exec(detail)?.[1]?.split(', ') ?? [];
  return [...new Set(keys.map((key) => modeOfKey(key.trim())))];
}

export function toDomainError(error: ServiceError, context: CallContext): Error {
  return statusToDomainError(error.code, error.details || error.message, context);
}

/** A status the model host sent as data (a batch member's error: its code's name and its message). */
export function memberErrorToDomainError(codeName: string, detail: string, context: CallContext): Error {
  const code = Object.values(Status).find((c): c is Status => typeof c === 'number' && Status[c] === codeName);
  return code === undefined ? new ModelHostError(`${codeName}: ${detail}`) : statusToDomainError(code, detail, context);
}

function statusToDomainError(code: Status, detail: string, context: CallContext): Error {
  const rule = GRPC_ERROR_TABLE.find((r) => r.code === code && (r.rpc === undefined || r.rpc === context.rpc));
  return rule ? rule.toError(detail, context) : new ModelHostError(`${Status[code] ?? code}: ${detail}`);
}
