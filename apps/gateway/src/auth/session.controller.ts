import { Body, Controller, Delete, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { UnauthorizedError } from '../errors/domain.errors.js';
import { Public } from './access.decorator.js';
import { ApiKeys } from './api-keys.js';
import { LoginDto, SessionDto, SessionStateDto } from './dto/login.dto.js';
import { clearedSessionCookie, sessionCookie, Sessions } from './sessions.js';

/**
 * The web page's login: the key goes once in a JSON body and comes back as an HttpOnly SameSite=Strict cookie that
 * the key guard takes like the header, so EventSource and <img> (which cannot send a header) work behind API_KEY
 * and the key is never in a URL. Public: the login is what gets a caller in.
 */
@ApiTags('session')
@Controller('api/session')
@Public()
export class SessionController {
  constructor(
    @Inject(ApiKeys) private readonly keys: ApiKeys,
    @Inject(Sessions) private readonly sessions: Sessions,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** HTTPS: this socket's TLS, or a PUBLIC_URL on https (a proxy in front ends TLS; X-Forwarded-Proto is not read). */
  private secure(request: Request): boolean {
    return request.secure || this.config.publicUrl?.startsWith('https:') === true;
  }

  @Get()
  @ApiOperation({ summary: 'Whether the server asks for a key, and whether this browser is logged in' })
  @ApiOkResponse({ type: SessionStateDto })
  state(@Req() request: Request): SessionStateDto {
    const authRequired = !this.keys.open;
    let authenticated = !authRequired;
    try {
      this.keys.check(request, 'key');
      authenticated = true;
    } catch {
      // No key, or a wrong or expired one: the page asks for it.
    }
    return { auth_required: authRequired, authenticated, admin: this.keys.callerOf(request).admin };
  }

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Log a browser in with a key: sets the session cookie (HttpOnly, SameSite=Strict)' })
  @ApiOkResponse({ type: SessionDto })
  @ApiBadRequestResponse({ description: 'the body has no key' })
  @ApiUnauthorizedResponse({ description: 'the key is not one of API_KEY or ADMIN_API_KEY' })
  login(@Body() body: LoginDto, @Req() request: Request, @Res({ passthrough: true }) response: Response): SessionDto {
    if (this.keys.open) return { auth_required: false, admin: true };
    const { valid, admin } = this.keys.verify(body.key);
    if (!valid) throw new UnauthorizedError('the API key is not valid');
    response.setHeader('Set-Cookie', sessionCookie(this.sessions.create(body.key), this.secure(request)));
    return { auth_required: true, admin };
  }

  @Delete()
  @HttpCode(204)
  @ApiOperation({ summary: "Log out: forgets this browser's session and clears its cookie" })
  @ApiNoContentResponse()
  logout(@Req() request: Request, @Res({ passthrough: true }) response: Response): void {
    this.sessions.end(request);
    response.setHeader('Set-Cookie', clearedSessionCookie(this.secure(request)));
  }
}
