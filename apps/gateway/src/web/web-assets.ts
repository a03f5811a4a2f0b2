import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the page (apps/web/vite.config.ts): dist/web, beside dist/apps/gateway. */
export const BUILT_PAGE_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

export interface WebAsset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  /** Vite names each asset by its content's hash: a name never changes its bytes. */
  readonly immutable: boolean;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/**
 * The built page, read into memory once at start (it is a few tens of kB): `index.html` and the files of `assets/`.
 * Only these names are served, so no request path ever reaches the file system.
 */
export class WebAssets {
  private readonly files = new Map<string, WebAsset>();

  constructor(readonly dir: string) {
    if (!existsSync(join(dir, 'index.html'))) return;
    this.add('index.html', readFileSync(join(dir, 'index.html')), false);
    const assets = join(dir, 'assets');
    if (!existsSync(assets)) return;
    for (const name of readdirSync(assets)) {
      if (TYPES[extname(name)]) this.add(`assets/${name}`, readFileSync(join(assets, name)), true);
    }
  }

  /** Whether the page was built (a gateway built with `nest build` alone has none). */
  get built(): boolean {
    return this.files.has('index.html');
  }

  get(name: string): WebAsset | undefined {
    return this.files.get(name);
  }

  private add(name: string, body: Buffer, immutable: boolean): void {
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    this.files.set(name, { body, type: TYPES[extname(name)] ?? 'application/octet-stream', etag, immutable });
  }
}
