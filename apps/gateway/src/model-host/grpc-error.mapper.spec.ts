import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';

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
} from '../errors/domain.errors.js';
import { memberErrorToDomainError, toDomainError, type CallContext } from './grpc-error.mapper.js';

function serviceError(code: Status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${Status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

const load: CallContext = { rpc: 'load', subject: 'portraits', timeoutMs: 600_000 };
const generate: CallContext = { rpc: 'generate', subject: 'portraits-0123456789ab', timeoutMs: 600_000 };
const memory: CallContext = { rpc: 'memory', subject: 'memory', timeoutMs: 10_000 };

describe('toDomainError', () => {
  it.each([
    [Status.NOT_FOUND, load, ModelFileMissingError, "Mode 'portraits' cannot be loaded: file not found: the detail"],
    [Status.INVALID_ARGUMENT, load, ModelLoadError, "Mode 'portraits' could not be loaded: the detail"],
    [Status.DEADLINE_EXCEEDED, load, ModeSwitchTimeoutError, "Mode switch timed out while loading mode 'portraits'"],
    [Status.DEADLINE_EXCEEDED, generate, GenerationTimeoutError, 'Generation timed out after 600000 ms'],
    [
      Status.DEADLINE_EXCEEDED,
      memory,
      ModelHostUnavailableError,
      'Model host unavailable: no answer to memory within 10000 ms',
    ],
    [Status.INVALID_ARGUMENT, generate, InvalidRequestError, 'the detail'],
    [Status.RESOURCE_EXHAUSTED, load, OutOfMemoryError, 'Device out of memory: the detail'],
    [Status.RESOURCE_EXHAUSTED, generate, OutOfMemoryError, 'Device out of memory: the detail'],
    [Status.FAILED_PRECONDITION, generate, ModelNotLoadedError, 'Model not loaded: the detail'],
    [Status.NOT_FOUND, generate, ModelNotLoadedError, 'Model not loaded: the detail'],
    [Status.CANCELLED, generate, JobCancelledError, 'the detail'],
    [Status.UNAVAILABLE, memory, ModelHostUnavailableError, 'Model host unavailable: the detail'],
    [Status.UNAVAILABLE, load, ModelHostUnavailableError, 'Model host unavailable: the detail'],
    [Status.INTERNAL, generate, ModelHostError, 'Model host error: INTERNAL: the detail'],
    [Status.UNKNOWN, load, ModelHostError, 'Model host error: UNKNOWN: the detail'],
  ])('maps %s on %j', (code, context, type, message) => {
    const error = toDomainError(serviceError(code, 'the detail'), context);
    expect(error).toBeInstanceOf(type);
    expect(error.message).toBe(message);
  });

  it("names the modes of the pinned keys the model host's PinnedModelsError lists", () => {
    const detail =
      '3300000 bytes (0 available) fits only by evicting pinned model(s): a-0123456789ab, b-x-ba9876543210; ' +
      'unpin or unload one of them';
    const error = toDomainError(serviceError(Status.FAILED_PRECONDITION, detail), load);
    expect(error).toBeInstanceOf(PinnedModelsError);
    expect((error as PinnedModelsError).pinnedModes).toEqual(['a', 'b-x']);
    expect(error.message).toContain("Mode 'portraits' cannot be loaded without evicting pinned mode(s) a, b-x");
  });
});

describe('memberErrorToDomainError', () => {
  it.each([
    ['RESOURCE_EXHAUSTED', OutOfMemoryError, 'Device out of memory: the detail'],
    ['FAILED_PRECONDITION', ModelNotLoadedError, 'Model not loaded: the detail'],
    ['INTERNAL', ModelHostError, 'Model host error: INTERNAL: the detail'],
    ['NO_SUCH_CODE', ModelHostError, 'Model host error: NO_SUCH_CODE: the detail'],
  ])("maps a batch member's %s through the same table", (code, type, message) => {
    const error = memberErrorToDomainError(code, 'the detail', generate);
    expect(error).toBeInstanceOf(type);
    expect(error.message).toBe(message);
  });
});
