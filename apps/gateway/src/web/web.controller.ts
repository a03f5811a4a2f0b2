import { Controller, Get, Inject, NotFoundException, Param, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request, Response } from 'express';

import { Public } from '../auth/access.decorator.js';
import { WebAssets } from './web-assets.js';

/**
 * What the page may do in the browser: talk to this server only, run only its own bundled script, never be framed.
 * `data:` images: the page's empty favicon.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The web page at `/` and its bundled files under `/assets/`. Public: the page holds no data, and it is what asks
 * for the key (POST /api/session); every API call it makes goes through the key guard like any other.
 */
@ApiExcludeController()
@Controller()
@Public()
export class WebController {
  constructor(@Inject(WebAssets) private readonly assets: WebAssets) {}

  @Get()
  index(@Req() request: Request, @Res() response: Response): void {
    if (!this.assets.built) {
      throw new NotFoundException('the web page is not built: run `npm run build` (it builds apps/web into dist/web)');
    }
    this.send('index.html', request, response);
  }

  @Get('assets/:file')
  asset(@Param('file') file: string, @Req() request: Request, @Res() response: Response): void {
    this.send(`assets/${file}`, request, response);
  }

  private send(name: string, request: Request, response: Response): void {
    const asset = this.assets.get(name);
    if (!asset) throw new NotFoundException(`Cannot GET ${request.path}`);
    response.setHeader('Content-Type', asset.type);
    response.setHeader('ETag', asset.etag);
    response.setHeader('Cache-Control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    response.setHeader('X-Content-Type-Options', 'nosniff');
    response.setHeader('Referrer-Policy', 'no-referrer');
    if (name === 'index.html') {
      response.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
      response.setHeader('X-Frame-Options', 'DENY');
    }
    if (request.headers['if-none-match'] === asset.etag) {
      response.status(304).end();
      return;
    }
    response.status(200).end(asset.body);
  }
}
