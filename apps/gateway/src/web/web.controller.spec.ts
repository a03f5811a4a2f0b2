import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { INestApplication } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import request from 'supertest';

import { ApiKeyGuard } from '../auth/api-key.guard.js';
import { AuthModule } from '../auth/auth.module.js';
import { loadConfig } from '../config/app-config.js';
import { ConfigModule } from '../config/config.module.js';
import { AllExceptionsFilter } from '../errors/all-exceptions.filter.js';
import { TEST_MODES_YAML } from '../../testing/test-app.js';
import { WebAssets } from './web-assets.js';
import { WebModule } from './web.module.js';

const INDEX = '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>';
const SCRIPT = 'console.log("page")';

/** The page's files behind the key guard (API_KEY set): public, with their types, caching and CSP. */
describe('WebController', () => {
  let dir: string;
  let app: INestApplication;
  let server: Server;

  async function serve(pageDir: string): Promise<void> {
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(loadConfig({ API_KEY: 'k', LOG_LEVEL: 'silent' }, dir)), AuthModule, WebModule],
      providers: [
        { provide: APP_GUARD, useExisting: ApiKeyGuard },
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
      ],
    })
      .overrideProvider(WebAssets)
      .useValue(new WebAssets(pageDir))
      .compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    server = app.getHttpServer() as Server;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'web-spec-'));
    writeFileSync(join(dir, 'modes.yaml'), TEST_MODES_YAML);
    mkdirSync(join(dir, 'page', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'page', 'index.html'), INDEX);
    writeFileSync(join(dir, 'page', 'assets', 'index-abc123.js'), SCRIPT);
    writeFileSync(join(dir, 'page', 'assets', 'notes.txt'), 'not a page file');
  });
  afterEach(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page at / without a key, never cached stale, under a CSP that allows only this origin', async () => {
    await serve(join(dir, 'page'));
    const response = await request(server).get('/').expect(200);
    expect(response.text).toBe(INDEX);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.headers['content-security-policy']).toContain("default-src 'none'; script-src 'self'");
    expect(response.headers['x-frame-options']).toBe('DENY');
    await request(server).get('/').set('If-None-Match', response.headers['etag']).expect(304);
  });

  it('serves the hashed assets for a year, and nothing else under /assets', async () => {
    await serve(join(dir, 'page'));
    const response = await request(server).get('/assets/index-abc123.js').expect(200);
    expect(response.text).toBe(SCRIPT);
    expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(response.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    await request(server).get('/assets/notes.txt').expect(404);
    await request(server).get('/assets/..%2findex.html').expect(404);
    await request(server).get('/assets/..%2f..%2fmodes.yaml').expect(404);
  });

  it('is open while the server asks a key of its callers', async () => {
    await serve(join(dir, 'page'));
    const session = await request(server).get('/api/session').expect(200);
    expect(session.body).toEqual({ auth_required: true, authenticated: false, admin: false });
    await request(server).get('/').expect(200);
    await request(server).get('/assets/index-abc123.js').expect(200);
  });

  it('answers 404 saying how to build the page when it was not built', async () => {
    await serve(join(dir, 'nothing-here'));
    const response = await request(server).get('/').expect(404);
    expect((response.body as { message: string }).message).toBe(
      'the web page is not built: run `npm run build` (it builds apps/web into dist/web)',
    );
  });
});
