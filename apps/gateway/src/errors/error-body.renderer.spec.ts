import { BadRequestException } from '@nestjs/common';

import {
  InvalidRequestError,
  ModeNotFoundError,
  QueueFullError,
  ModelHostUnavailableError,
  UnauthorizedError,
} from './domain.errors.js';
import { isOpenAiRoute, renderErrorBody, renderOpenAiError } from './error-body.renderer.js';
import { classifyError, toHttpError } from './http-error.table.js';

describe('error bodies by route', () => {
  it("renders OpenAI's body under /v1 only, ours elsewhere, from the same failure", () => {
    const failure = classifyError(new ModeNotFoundError('xyz'));
    expect(failure.status).toBe(404);
    expect(renderErrorBody(failure, '/v1/models/xyz')).toEqual({
      error: {
        message: "Mode 'xyz' not found",
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_not_found',
      },
    });
    expect(renderErrorBody(failure, '/generate')).toEqual(toHttpError(new ModeNotFoundError('xyz')).body);
    expect([
      isOpenAiRoute('/v1'),
      isOpenAiRoute('/v1/images/generations'),
      isOpenAiRoute('/v10'),
      isOpenAiRoute('/api/v1'),
    ]).toEqual([true, true, false, false]);
  });

  it("names a validation error's first field as the param", () => {
    const failure = classifyError(new InvalidRequestError(['n: must be at most 10', 'size: must be WIDTHxHEIGHT']));
    expect(renderOpenAiError(failure)).toEqual({
      error: {
        message: 'n: must be at most 10; size: must be WIDTHxHEIGHT',
        type: 'invalid_request_error',
        param: 'n',
        code: 'invalid_request',
      },
    });
    expect(classifyError(new InvalidRequestError(['body: must be a JSON object'])).param).toBeNull();
    expect(classifyError(new BadRequestException('no field here')).param).toBeNull();
  });

  it('types errors by status, as OpenAI does', () => {
    const typeOf = (error: Error): string => renderOpenAiError(classifyError(error)).error.type;
    expect(typeOf(new UnauthorizedError('no key'))).toBe('invalid_request_error');
    expect(renderOpenAiError(classifyError(new UnauthorizedError('no key'))).error.code).toBe('invalid_api_key');
    expect(typeOf(new QueueFullError(64, 5))).toBe('rate_limit_error');
    expect(typeOf(new ModelHostUnavailableError('gone'))).toBe('server_error');
    expect(typeOf(new TypeError('a bug'))).toBe('server_error');
    expect(renderOpenAiError(classifyError(new TypeError('a bug'))).error.message).toBe('Internal server error');
  });

  it('keeps headers and problems with the failure, whatever the body', () => {
    expect(classifyError(new QueueFullError(64, 5)).headers).toEqual({ 'Retry-After': '5' });
    expect(classifyError(new UnauthorizedError('no key')).headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
  });
});
