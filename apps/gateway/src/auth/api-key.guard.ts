import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';

import { ACCESS_METADATA, type Access } from './access.decorator.js';
import { ApiKeys } from './api-keys.js';

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
    this.keys.check(context.switchToHttp().getRequest<Request>(), access);
    return true;
  }
}
