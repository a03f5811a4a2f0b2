import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { Request } from 'express';

import { InvalidRequestError, UnsupportedMediaTypeError } from '../errors/domain.errors.js';
import { inspectPlainData, type PlainDataProblem } from './plain-data.js';

/** Every body this API takes is one flat JSON object; deeper nesting only feeds the recursive converters. */
export const MAX_BODY_DEPTH = 32;
/** Values (objects, arrays, strings, numbers) in one body; a real one holds a dozen. */
export const MAX_BODY_VALUES = 10_000;

/**
 * What a request body may be, before any pipe converts it: a route whose handler takes a @Body() takes
 * `application/json` only (415 otherwise), a route without one takes no body at all (415), and a JSON body is
 * refused with 400 when it nests deeper than MAX_BODY_DEPTH, holds more than MAX_BODY_VALUES values, a lone UTF-16 surrogate, or has a
 * `__proto__`/`constructor` key. Its size is bounded earlier, by the JSON parser (100 kB, then 413).
 */
@Injectable()
export class RequestBodyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<Request>();
    const route = `${request.method} ${request.path}`;
    if (!hasContent(request)) {
      // A browser sends a form's or text/plain's content type cross-site without asking first (no CORS preflight):
      // a page elsewhere could post to a bodiless route with an empty body. JSON always needs the preflight.
      // (request.is() answers null without a body: the header itself is read.)
      const type = (request.get('content-type') ?? '').slice(0, 100);
      if (!SAFE_METHODS.has(request.method) && SIMPLE_TYPES.has(mediaType(type))) {
        throw new UnsupportedMediaTypeError(
          `${route} refuses Content-Type '${type}', even with an empty body: send application/json, or no Content-Type`,
        );
      }
      return true;
    }
    if (!takesBody(context)) throw new UnsupportedMediaTypeError(`${route} takes no body`);
    if (request.is('application/json') !== 'application/json') {
      const type = (request.get('content-type') || 'none').slice(0, 100);
      throw new UnsupportedMediaTypeError(`${route} takes a JSON body (Content-Type: application/json), not '${type}'`);
    }
    const problem = inspectPlainData(request.body, { maxNodes: MAX_BODY_VALUES, maxDepth: MAX_BODY_DEPTH });
    if (problem) throw new InvalidRequestError([describeProblem(problem)]);
    return true;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The content types of an HTML form and of a "simple" fetch: what a cross-site page may post without a preflight. */
const SIMPLE_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/** A body is there when its length is announced and not zero, or it comes in chunks. */
function hasContent(request: Request): boolean {
  if (request.headers['transfer-encoding'] !== undefined) return true;
  return Number(request.headers['content-length'] ?? '0') !== 0;
}

/** Whether the handler declares a @Body() parameter. */
function takesBody(context: ExecutionContext): boolean {
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), context.getHandler().name) as
    Record<string, unknown> | undefined;
  return Object.keys(args ?? {}).some((key) => key.split(':')[0] === String(RouteParamtypes.BODY));
}

function describeProblem(problem: PlainDataProblem): string {
  switch (problem.kind) {
    case 'too_deep':
      return `${problem.path || 'body'}: nested deeper than ${MAX_BODY_DEPTH} levels`;
    case 'reserved_key':
      return `${problem.path}: unknown field`;
    case 'lone_surrogate':
      return `${problem.path || 'body'}: must be valid Unicode text (it holds a lone UTF-16 surrogate)`;
    case 'too_many_nodes':
      return `body: more than ${MAX_BODY_VALUES} values`;
  }
}
