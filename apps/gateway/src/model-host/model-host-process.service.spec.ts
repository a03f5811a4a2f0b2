import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { removeStaleSocketDirs } from './stale-socket-dirs.js';

describe('removeStaleSocketDirs', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stale-sockets-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes the folders of gateways that no longer run, and nothing else', () => {
    // A pid that ran and is gone: a child that has exited and been reaped.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    const hex = '0123456789abcdef';
    const stale = `modelhost-${deadPid}-${hex}`;
    const live = `modelhost-${process.ppid}-${hex}`;
    const own = `modelhost-${process.pid}-${hex}`;
    const unlike = ['modelhost-12-short', `modelhost-${deadPid}-${hex}-x`, 'other'];
    for (const name of [stale, live, own, ...unlike]) mkdirSync(join(dir, name));
    writeFileSync(join(dir, stale, 'modelhost.sock'), '');
    // The pattern on a plain file: not a folder of ours.
    const file = `modelhost-${deadPid}-fedcba9876543210`;
    writeFileSync(join(dir, file), '');

    expect(removeStaleSocketDirs(dir)).toEqual([join(dir, stale)]);
    expect(readdirSync(dir).sort()).toEqual([live, own, ...unlike, file].sort());
  });

  it('does nothing when the folder cannot be read', () => {
    expect(removeStaleSocketDirs(join(dir, 'missing'))).toEqual([]);
  });
});
