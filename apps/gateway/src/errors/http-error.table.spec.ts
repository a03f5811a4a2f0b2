import { BadRequestException, NotFoundException } from '@nestjs/common';

import {
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
  QueueTimeoutError,
  ModelHostError,
  ShuttingDownError,
  ModelHostUnavailableError,
  TaskFailedError,
  UnknownTaskError,
  UnsupportedMediaTypeError,
} from './domain.errors.js';
import { toHttpError } from './http-error.table.js';

describe('toHttpError', () => {
  it.each([
    [new InvalidRequestError(['size: must be WIDTHxHEIGHT', 'seed: must be at least 0']), 400, 'invalid_request'],
    [new ModeNotFoundError('xyz'), 404, 'mode_not_found'],
    [new JobNotFoundError('j'), 404, 'job_not_found'],
    [new JobStateConflictError("job 'j' is queued: no image yet"), 409, 'job_state_conflict'],
    [new JobResultExpiredError('j'), 410, 'job_result_expired'],
    [new UnsupportedMediaTypeError('POST /generate takes application/json'), 415, 'unsupported_media_type'],
    [new ModelLoadError('sd15', 'model file not found: /models/x.safetensors'), 500, 'model_load_failed'],
    [new ModelHostError('INTERNAL: boom'), 500, 'model_host_error'],
    [new ModelHostUnavailableError('connection refused'), 503, 'model_host_unavailable'],
    [new OutOfMemoryError('CUDA out of memory'), 503, 'out_of_memory'],
    [new PinnedModelsError('b', ['a'], 'detail'), 503, 'pinned_models_in_the_way'],
    [new ModelNotLoadedError("model 'k' is not loaded"), 503, 'model_not_loaded'],
    [new JobCancelledError(), 503, 'cancelled'],
    [new NotReadyError('the model host is not serving'), 503, 'not_ready'],
    [new ModeSwitchTimeoutError('sdxl'), 504, 'mode_switch_timeout'],
    [new GenerationTimeoutError(600_000), 504, 'generation_timeout'],
    [new QueueTimeoutError(1000), 504, 'queue_timeout'],
    [new ModeSwitchTimeoutError('b', "waited 1000 ms while mode 'b' was loading"), 504, 'mode_switch_timeout'],
    [new UnknownTaskError("unknown task 'x'"), 404, 'task_not_found'],
    [new TaskFailedError('no model loaded'), 409, 'task_failed'],
    [new ModelFileMissingError('sd15', '/models/gone.safetensors'), 409, 'model_file_missing'],
    [new ShuttingDownError('no new work is taken'), 503, 'shutting_down'],
  ])('maps %p to %i %s', (error, status, code) => {
    expect(toHttpError(error)).toEqual({
      status,
      body: { error: code, message: error.message, statusCode: status },
      headers: {},
    });
  });

  it("says the spec's messages", () => {
    expect(toHttpError(new ModeNotFoundError('xyz')).body.message).toBe("Mode 'xyz' not found");
    expect(toHttpError(new ModeNotFoundError('xyz', ['a', 'b', 'c', 'd', 'e', 'f'])).body.message).toBe(
      "Mode 'xyz' not found (modes: a, b, c, d, e, …)",
    );
    expect(toHttpError(new OutOfMemoryError('no room')).body.message).toContain('out of memory');
    expect(toHttpError(new ModeSwitchTimeoutError('sdxl')).body.message).toContain('Mode switch timed out');
    expect(toHttpError(new QueueFullError(64, 5)).body.message).toContain('Queue full');
  });

  it('joins validation problems into one message', () => {
    const { body } = toHttpError(new InvalidRequestError(['size: bad', 'colour: unknown field']));
    expect(body.message).toBe('size: bad; colour: unknown field');
  });

  it('answers a full queue with 429 and Retry-After', () => {
    expect(toHttpError(new QueueFullError(64, 5))).toEqual({
      status: 429,
      body: { error: 'queue_full', message: 'Queue full: 64 waiting jobs (QUEUE_MAX), retry later', statusCode: 429 },
      headers: { 'Retry-After': '5' },
    });
  });

  it("keeps Nest's own HTTP exceptions' status and message", () => {
    expect(toHttpError(new NotFoundException('Cannot GET /nope')).body).toEqual({
      error: 'not_found',
      message: 'Cannot GET /nope',
      statusCode: 404,
    });
    expect(toHttpError(new BadRequestException(['a', 'b'])).body.message).toBe('a; b');
  });

  it("keeps the body parser's client errors", () => {
    const parseError = Object.assign(new SyntaxError('Unexpected token } in JSON at position 9'), {
      status: 400,
      expose: true,
    });
    expect(toHttpError(parseError)).toEqual({
      status: 400,
      body: { error: 'bad_request', message: 'Unexpected token } in JSON at position 9', statusCode: 400 },
      headers: {},
    });
  });

  it('answers an invalid modes file with 400 and every problem with its YAML path', () => {
    const error = new ModesConfigError('/etc/gen/modes.yaml', [
      'modes.portraits.loras[1].strength: must be a number',
      "default_mode: 'x' is not one of the modes (a, b)",
    ]);
    expect(toHttpError(error)).toEqual({
      status: 400,
      body: { error: 'invalid_modes_file', message: error.message, statusCode: 400, problems: error.problems },
      headers: {},
    });
    expect(error.message).toContain('modes.portraits.loras[1].strength: must be a number');
  });

  it('answers mode features on the legacy setup with 409 saying they need a modes.yaml', () => {
    const { status, body } = toHttpError(new ModesDisabledError('Mode reload'));
    expect(status).toBe(409);
    expect(body.error).toBe('modes_disabled');
    expect(body.message).toMatch(/^Mode reload needs a modes\.yaml/);
  });

  it('hides everything about an unexpected error', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'png')");
    const { status, body } = toHttpError(bug);
    expect(status).toBe(500);
    expect(body).toEqual({ error: 'internal_error', message: 'Internal server error', statusCode: 500 });
    expect(toHttpError('a string').status).toBe(500);
  });
});
