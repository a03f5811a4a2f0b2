import { STATUS_CODES } from 'node:http';

import { HttpException } from '@nestjs/common';

import {
  ForbiddenError,
  GenerationTimeoutError,
  InvalidRequestError,
  JobCancelledError,
  JobNotFoundError,
  JobResultExpiredError,
  JobStateConflictError,
  ModeNotFoundError,
  ModesConfigError,
  ModesDisabledError,
  ModeSwitchTimeoutError,
  ModelFileMissingError,
  ModelLoadError,
  ModelNotLoadedError,
  NotReadyError,
  OutOfMemoryError,
  PinnedModelsError,
  QueueFullError,
  EventStreamsFullError,
  QueueTimeoutError,
  ModelHostError,
  ShuttingDownError,
  ModelHostUnavailableError,
  QueueUnavailableError,
  FailedElsewhereError,
  TaskFailedError,
  UnauthorizedError,
  UnknownTaskError,
  UnsupportedMediaTypeError,
} from './domain.errors.js';
import { renderOurError } from './error-body.renderer.js';

/** Our error replies' body (the whole API but /v1): a short code, a sentence for people, the status again. */
export interface ErrorBody {
  readonly error: string;
  readonly message: string;
  readonly statusCode: number;
  /** Every problem on its own line, for errors that have several (an invalid modes file: "yaml.path: reason"). */
  readonly problems?: readonly string[];
}

/**
 * A failure as the table sees it, before any body is chosen: errors/error-body.renderer.ts renders it as our body
 * or as OpenAI's, by route.
 */
export interface HttpFailure {
  readonly status: number;
  /** Our short code (`mode_not_found`, `queue_full`, ...). */
  readonly code: string;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly problems?: readonly string[];
  /** The request field the failure is about (a validation error's first field); null when it is about none. */
  readonly param: string | null;
}

export interface HttpError {
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

interface Rule<E extends Error> {
  readonly type: abstract new (...args: never[]) => E;
  readonly status: number;
  readonly error: string;
  readonly headers?: (error: E) => Record<string, string>;
  readonly problems?: (error: E) => readonly string[];
  readonly param?: (error: E) => string | null;
}

const rule = <E extends Error>(r: Rule<E>): Rule<Error> => r as unknown as Rule<Error>;

/** The one table from domain errors to HTTP. */
export const HTTP_ERROR_TABLE: readonly Rule<Error>[] = [
  rule({
    type: InvalidRequestError,
    status: 400,
    error: 'invalid_request',
    param: (e: InvalidRequestError) => fieldOf(e.problems[0]),
  }),
  // WWW-Authenticate names the scheme a client should use (RFC 9110 §11.6.1).
  rule({
    type: UnauthorizedError,
    status: 401,
    error: 'unauthorized',
    headers: () => ({ 'WWW-Authenticate': 'Bearer' }),
  }),
  rule({ type: ForbiddenError, status: 403, error: 'forbidden' }),
  rule({ type: ModeNotFoundError, status: 404, error: 'mode_not_found' }),
  rule({ type: JobNotFoundError, status: 404, error: 'job_not_found' }),
  rule({ type: JobStateConflictError, status: 409, error: 'job_state_conflict' }),
  rule({ type: JobResultExpiredError, status: 410, error: 'job_result_expired' }),
  rule({ type: UnsupportedMediaTypeError, status: 415, error: 'unsupported_media_type' }),
  // Only a reload meets an invalid modes file while serving; at start it stops the server instead.
  rule({
    type: ModesConfigError,
    status: 400,
    error: 'invalid_modes_file',
    problems: (e: ModesConfigError) => e.problems,
  }),
  rule({ type: ModesDisabledError, status: 409, error: 'modes_disabled' }),
  rule({ type: UnknownTaskError, status: 404, error: 'task_not_found' }),
  rule({ type: TaskFailedError, status: 409, error: 'task_failed' }),
  rule({ type: ModelFileMissingError, status: 409, error: 'model_file_missing' }),
  rule({
    type: QueueFullError,
    status: 429,
    error: 'queue_full',
    headers: (e: QueueFullError) => ({ 'Retry-After': String(e.retryAfterSeconds) }),
  }),
  // The request was fine; the server's configuration names files the model host cannot load.
  rule({ type: ModelLoadError, status: 500, error: 'model_load_failed' }),
  rule({ type: ModelHostError, status: 500, error: 'model_host_error' }),
  rule({ type: ModelHostUnavailableError, status: 503, error: 'model_host_unavailable' }),
  rule({
    type: EventStreamsFullError,
    status: 503,
    error: 'event_streams_full',
    headers: (e: EventStreamsFullError) => ({ 'Retry-After': String(e.retryAfterSeconds) }),
  }),
  rule({
    type: QueueUnavailableError,
    status: 503,
    error: 'queue_unavailable',
    headers: (e: QueueUnavailableError) => ({ 'Retry-After': String(e.retryAfterSeconds) }),
  }),
  rule({ type: OutOfMemoryError, status: 503, error: 'out_of_memory' }),
  rule({ type: PinnedModelsError, status: 503, error: 'pinned_models_in_the_way' }),
  rule({ type: ModelNotLoadedError, status: 503, error: 'model_not_loaded' }),
  rule({ type: JobCancelledError, status: 503, error: 'cancelled' }),
  rule({ type: NotReadyError, status: 503, error: 'not_ready' }),
  rule({ type: ShuttingDownError, status: 503, error: 'shutting_down' }),
  rule({ type: ModeSwitchTimeoutError, status: 504, error: 'mode_switch_timeout' }),
  rule({ type: GenerationTimeoutError, status: 504, error: 'generation_timeout' }),
  rule({ type: QueueTimeoutError, status: 504, error: 'queue_timeout' }),
];

/** Maps anything thrown while serving a request to a status, our code, a message and headers; never leaks a stack. */
export function classifyError(thrown: unknown): HttpFailure {
  if (thrown instanceof Error) {
    // Told as it was told where the job ran (another gateway: a shared queue).
    if (thrown instanceof FailedElsewhereError) {
      const { statusCode, error, message, problems } = thrown.body;
      return failure(statusCode, error, message, { problems });
    }
    const match = HTTP_ERROR_TABLE.find((r) => thrown instanceof r.type);
    if (match) {
      return failure(match.status, match.error, thrown.message, {
        headers: match.headers?.(thrown),
        problems: match.problems?.(thrown),
        param: match.param?.(thrown),
      });
    }
  }
  if (thrown instanceof HttpException) {
    return failure(thrown.getStatus(), codeFor(thrown.getStatus()), messageOf(thrown.getResponse(), thrown.message));
  }
  // Express middleware (the JSON body parser) reports client errors as http-errors with `expose`.
  if (isExposedClientError(thrown)) return failure(thrown.status, codeFor(thrown.status), thrown.message);
  return failure(500, 'internal_error', 'Internal server error');
}

/** Our own reply to anything thrown: the status, `{ error, message, statusCode }` and headers. */
export function toHttpError(thrown: unknown): HttpError {
  const failure = classifyError(thrown);
  return { status: failure.status, body: renderOurError(failure), headers: failure.headers };
}

function failure(
  status: number,
  code: string,
  message: string,
  extra: { headers?: Record<string, string>; problems?: readonly string[]; param?: string | null } = {},
): HttpFailure {
  return {
    status,
    code,
    message,
    headers: extra.headers ?? {},
    ...(extra.problems && { problems: extra.problems }),
    param: extra.param ?? null,
  };
}

/** "prompt: is required" -> "prompt"; a problem with the body as a whole names no field. */
function fieldOf(problem: string | undefined): string | null {
  const field = problem?.split(': ')[0];
  return field === undefined || field === problem || field === 'body' ? null : field;
}

/** "Not Found" -> "not_found", so Nest's own exceptions read like ours. */
function codeFor(status: number): string {
  return (STATUS_CODES[status] ?? 'error').toLowerCase().replace(/[^a-z0-9]+/g, '_');
}

function messageOf(response: string | object, fallback: string): string {
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (Array.isArray(message)) return message.map(String).join('; ');
  return typeof message === 'string' ? message : fallback;
}

function isExposedClientError(thrown: unknown): thrown is Error & { status: number } {
  if (!(thrown instanceof Error)) return false;
  const { status, expose } = thrown as Error & { status?: unknown; expose?: unknown };
  return expose === true && typeof status === 'number' && status >= 400 && status < 500;
}
