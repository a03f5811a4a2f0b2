import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { modelHostEnv, parseModelHostLine } from './model-host-process.service.js';
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

describe('parseModelHostLine', () => {
  it.each([
    ['2026-01-01 12:00:00,123 WARNING modelhost.engine: low memory', 'warn', 'modelhost.engine', 'low memory'],
    ['2026-01-01 12:00:00,123 INFO modelhost: serving on unix:/x: ok', 'log', 'modelhost', 'serving on unix:/x: ok'],
    ['2026-01-01 12:00:00,123 ERROR grpc: boom', 'error', 'grpc', 'boom'],
    ['2026-01-01 12:00:00,123 CRITICAL x: y', 'error', 'x', 'y'],
    ['2026-01-01 12:00:00,123 DEBUG x: y', 'debug', 'x', 'y'],
  ])('reads the level of %j', (line, level, logger, msg) => {
    expect(parseModelHostLine(line)).toEqual({ level, logger, msg });
  });

  it('says a line is no record when it is not one (a traceback line, a raw print)', () => {
    expect(parseModelHostLine('Traceback (most recent call last):')).toBeUndefined();
    expect(parseModelHostLine('  File "x.py", line 3, in <module>')).toBeUndefined();
  });
});

describe('modelHostEnv', () => {
  it("is the gateway's environment less its keys", () => {
    const env = { PATH: '/bin', API_KEY: 'k', ADMIN_API_KEY: 'a', MODEL_ROOTS: '/m', HF_HUB_OFFLINE: '1' };
    expect(modelHostEnv(env)).toEqual({ PATH: '/bin', MODEL_ROOTS: '/m', HF_HUB_OFFLINE: '1' });
    expect(env.API_KEY).toBe('k');
  });
});
