import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ModesFileWatcher } from './modes-file.watcher.js';
import { waitFor } from '../../testing/wait-for.js';

const FAST = { debounceMs: 30, rearmMs: 50, pollMs: 0 };

/** Waits for what the watcher does; the deadline bounds a hang, it claims no latency. */
function eventually(check: () => boolean): Promise<unknown> {
  return waitFor(check, { what: 'the watcher to report' });
}

describe('ModesFileWatcher', () => {
  let root: string;
  let dir: string;
  let file: string;
  let changes: number;
  let warnings: string[];
  let watcher: ModesFileWatcher;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'modes-watch-'));
    dir = join(root, 'conf');
    mkdirSync(dir);
    file = join(dir, 'modes.yaml');
    writeFileSync(file, 'a');
    changes = 0;
    warnings = [];
    watcher = new ModesFileWatcher(
      file,
      () => changes++,
      { log: () => undefined, warn: (message) => warnings.push(message) },
      FAST,
    );
  });

  afterEach(() => {
    watcher.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('reports a write once, however many events it made', async () => {
    watcher.start();
    writeFileSync(file, 'b');
    writeFileSync(file, 'bb');
    await eventually(() => changes > 0);
    // A later write's report comes after any the burst could still make (events arrive in order): if it is the
    // second report, the burst made one.
    writeFileSync(file, 'later');
    await eventually(() => changes > 1);
    expect(changes).toBe(2);
  });

  it('reports a save by rename, and keeps watching after it', async () => {
    watcher.start();
    for (const round of [1, 2, 3]) {
      writeFileSync(join(dir, `modes.yaml.${round}`), String(round));
      renameSync(join(dir, `modes.yaml.${round}`), file);
      await eventually(() => changes === round);
    }
  });

  it('ignores the other files of the folder', async () => {
    watcher.start();
    writeFileSync(join(dir, 'other.yaml'), 'x');
    writeFileSync(join(dir, 'modes.yaml.bak'), 'x');
    // The write to the file itself comes last: its one report proves the others were seen and skipped.
    writeFileSync(file, 'c');
    await eventually(() => changes === 1);
    await new Promise((resolve) => setTimeout(resolve, FAST.debounceMs * 3));
    expect(changes).toBe(1);
  });

  it('survives its folder being deleted, and watches again once it is back', async () => {
    watcher.start();
    rmSync(dir, { recursive: true });
    await eventually(() => warnings.length === 1);
    expect(warnings[0]).toContain(`${dir} was removed or replaced`);

    mkdirSync(dir);
    writeFileSync(file, 'back');
    // Re-armed: it reports once (the file may have changed while unwatched) ...
    await eventually(() => changes >= 1);
    const seen = changes;
    // ... and sees writes again.
    writeFileSync(file, 'again');
    await eventually(() => changes === seen + 1);
  });

  it('starts on a folder that does not exist yet', async () => {
    rmSync(dir, { recursive: true });
    watcher.start();
    expect(warnings).toEqual([expect.stringContaining(`cannot watch ${dir} yet`)]);
    mkdirSync(dir);
    writeFileSync(file, 'new');
    await eventually(() => changes >= 1);
  });

  it('reports nothing once closed', async () => {
    watcher.start();
    watcher.close();
    writeFileSync(file, 'late');
    await new Promise((resolve) => setTimeout(resolve, FAST.debounceMs * 4));
    expect(changes).toBe(0);
  });
});

/** MODES_WATCH_POLL_MS: the same reports from stat polling, for mounts that deliver no events. */
describe('ModesFileWatcher, polling', () => {
  let root: string;
  let file: string;
  let changes: number;
  let watcher: ModesFileWatcher;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'modes-poll-'));
    file = join(root, 'modes.yaml');
    writeFileSync(file, 'a');
    changes = 0;
    watcher = new ModesFileWatcher(
      file,
      () => changes++,
      { log: () => undefined, warn: () => undefined },
      { ...FAST, pollMs: 20 },
    );
    watcher.start();
  });

  afterEach(() => {
    watcher.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('reports a write, a save by rename, a removal and a reappearance', async () => {
    writeFileSync(file, 'bb');
    await eventually(() => changes === 1);
    writeFileSync(join(root, 'modes.yaml.tmp'), 'ccc');
    renameSync(join(root, 'modes.yaml.tmp'), file);
    await eventually(() => changes === 2);
    rmSync(file);
    await eventually(() => changes === 3);
    writeFileSync(file, 'dddd');
    await eventually(() => changes === 4);
  });

  it('ignores the other files of the folder', async () => {
    writeFileSync(join(root, 'other.yaml'), 'x');
    writeFileSync(file, 'changed');
    await eventually(() => changes === 1);
    await new Promise((resolve) => setTimeout(resolve, FAST.debounceMs * 3));
    expect(changes).toBe(1);
  });
});
