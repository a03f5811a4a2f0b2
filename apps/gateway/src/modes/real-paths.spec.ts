import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RealPaths } from './real-paths.js';

describe('RealPaths', () => {
  let dir: string;
  let root: string;
  let outside: string;
  beforeEach(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'real-paths-')));
    root = join(dir, 'models');
    outside = join(dir, 'elsewhere');
    mkdirSync(join(root, 'real'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, 'real', 'good.safetensors'), '');
    writeFileSync(join(outside, 'evil.safetensors'), '');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('follows a link among plain files of the same folder, whichever is asked first', () => {
    const good = join(root, 'real', 'good.safetensors');
    const link = join(root, 'real', 'link.safetensors');
    const evil = join(outside, 'evil.safetensors');
    symlinkSync(evil, link);
    const fileFirst = new RealPaths();
    expect([fileFirst.of(good), fileFirst.of(link)]).toEqual([good, evil]);
    const linkFirst = new RealPaths();
    expect([linkFirst.of(link), linkFirst.of(good)]).toEqual([evil, good]);
  });

  it('gives the files under a linked folder, present or missing, the folder target', () => {
    symlinkSync(outside, join(root, 'linked-dir'));
    const realPaths = new RealPaths();
    expect(realPaths.of(join(root, 'linked-dir', 'evil.safetensors'))).toBe(join(outside, 'evil.safetensors'));
    expect(realPaths.of(join(root, 'linked-dir', 'missing', 'x.safetensors'))).toBe(
      join(outside, 'missing', 'x.safetensors'),
    );
    expect(realPaths.of(join(root, 'real', 'good.safetensors'))).toBe(join(root, 'real', 'good.safetensors'));
  });

  it('follows a dangling link by its text and a relative link from its own folder', () => {
    symlinkSync(join(outside, 'not-yet.safetensors'), join(root, 'dangling.safetensors'));
    symlinkSync('real', join(root, 'relative-dir'));
    const realPaths = new RealPaths();
    expect(realPaths.of(join(root, 'dangling.safetensors'))).toBe(join(outside, 'not-yet.safetensors'));
    expect(realPaths.of(join(root, 'relative-dir', 'good.safetensors'))).toBe(join(root, 'real', 'good.safetensors'));
  });

  it('refuses a loop', () => {
    symlinkSync('loop-b', join(root, 'loop-a'));
    symlinkSync('loop-a', join(root, 'loop-b'));
    expect(() => new RealPaths().of(join(root, 'loop-a', 'x.safetensors'))).toThrow(
      'more than 40 symbolic links (a loop?)',
    );
  });

  it('keeps nothing from one instance to the next: a link changed in between is seen', () => {
    const link = join(root, 'model.safetensors');
    symlinkSync(join(root, 'real', 'good.safetensors'), link);
    expect(new RealPaths().of(link)).toBe(join(root, 'real', 'good.safetensors'));
    unlinkSync(link);
    symlinkSync(join(outside, 'evil.safetensors'), link);
    expect(new RealPaths().of(link)).toBe(join(outside, 'evil.safetensors'));
  });
});
