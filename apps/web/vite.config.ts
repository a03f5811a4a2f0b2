import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** The web page: built into dist/web, which the gateway's web module serves at `/`. */
export default defineConfig({
  root: here('.'),
  base: '/',
  // Everything the page needs is in the bundle: no CDN, no web fonts, nothing fetched from elsewhere.
  build: {
    outDir: here('../../dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  logLevel: 'warn',
});
