import { createParamDecorator, Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';

import { ACCESS_METADATA, type Access } from './access.decorator.js';
import { ApiKeys, type Caller } from './api-keys.js';

const CALLER = Symbol('caller');
type CallerRequest = Request & { [CALLER]?: Caller };

/** The request's caller (who, and whether an admin), as the key guard found it: `@RequestCaller() caller: Caller`. */
export const RequestCaller = createParamDecorator((_data: unknown, context: ExecutionContext): Caller => {
  const caller = context.switchToHttp().getRequest<CallerRequest>()[CALLER];
  // The guard is global: a handler that runs has passed it. Failing closed keeps a mistake from showing all jobs.
  return caller ?? { id: 'anonymous', admin: false };
});

/**
 * The global guard: every route needs a key once API_KEY is set, unless its handler or controller is marked
 * @Public() — so a new controller is closed until it says otherwise.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(ApiKeys) private readonly keys: ApiKeys,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const access =
      this.reflector.getAllAndOverride<Access | undefined>(ACCESS_METADATA, [
        context.getHandler(),
        context.getClass(),
      ]) ?? 'key';
    const request = context.switchToHttp().getRequest<Request>();
    this.keys.check(request, access);
    (request as CallerRequest)[CALLER] = this.keys.callerOf(request);
    return true;
  }
}
