import type { ErrorBody, HttpFailure } from './http-error.table.js';

/** The OpenAI-compatible routes (README "OpenAI-compatible API"): their errors take OpenAI's body. */
export const OPENAI_PREFIX = '/v1';

/** OpenAI's error body: what its SDKs read into their error classes' `message`, `type`, `param` and `code`. */
export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string;
    readonly type: string;
    readonly param: string | null;
    readonly code: string | null;
  };
}

/**
 * Our codes that OpenAI's API has a code of its own for, which its clients know: a mode is a model there, and the
 * field naming it is `model`.
 */
const OPENAI_CODES: Readonly<Record<string, { readonly code: string; readonly param?: string }>> = {
  mode_not_found: { code: 'model_not_found', param: 'model' },
  unauthorized: { code: 'invalid_api_key' },
};

export function isOpenAiRoute(path: string): boolean {
  return path === OPENAI_PREFIX || path.startsWith(`${OPENAI_PREFIX}/`);
}

/** The body of an error reply: OpenAI's on its routes, ours everywhere else. */
export function renderErrorBody(failure: HttpFailure, path: string): ErrorBody | OpenAiErrorBody {
  return isOpenAiRoute(path) ? renderOpenAiError(failure) : renderOurError(failure);
}

export function renderOurError({ status, code, message, problems }: HttpFailure): ErrorBody {
  return { error: code, message, statusCode: status, ...(problems && { problems }) };
}

/**
 * `type` follows the status, as OpenAI's does: `invalid_request_error` for the client's 4xx (a missing or wrong key
 * included, as OpenAI answers one), `rate_limit_error` for a full queue (429), `server_error` for 5xx.
 */
export function renderOpenAiError({ status, code, message, param }: HttpFailure): OpenAiErrorBody {
  const known = OPENAI_CODES[code];
  return {
    error: {
      message,
      type: status >= 500 ? 'server_error' : status === 429 ? 'rate_limit_error' : 'invalid_request_error',
      param: known?.param ?? param,
      code: known?.code ?? code,
    },
  };
}
