import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface WatcherLogger {
  log(message: string): void;
  warn(message: string): void;
}

export interface WatcherOptions {
  /** Quiet time after the last event before `onChange` runs: an editor's save is several events. */
  readonly debounceMs: number;
  /** How often a lost watch (its folder deleted or replaced) is tried again. */
  readonly rearmMs: number;
  /**
   * Above 0: stat the file this often instead of waiting for OS events (MODES_WATCH_POLL_MS). Bind mounts into
   * containers and network file systems often deliver no events at all.
   */
  readonly pollMs: number;
}

// 50 ms: an editor's save (write, or write + rename) is one burst well inside it, and a change is served within
// about 60 ms (docs/BENCHMARKS.md, hot reload).
export const DEFAULT_WATCHER_OPTIONS: WatcherOptions = { debounceMs: 50, rearmMs: 1000, pollMs: 0 };

/**
 * Calls `onChange` shortly after the file is written, replaced or removed.
 *
 * It watches the file's folder, not the file: editors (and atomic writers)
 * save by writing a temporary file and renaming it over the old one, which
 * would leave a watch on the old file's inode deaf. The folder's own watch
 * dies when the folder is deleted or replaced; that is noticed, logged, and
 * the watch is set up again once the folder is back (and `onChange` runs,
 * since the file may have changed meanwhile). Nothing here ever throws into
 * the process: a watch that fails is a log line and a retry.
 */
export class ModesFileWatcher {
  private readonly dir: string;
  private readonly name: string;
  private watcher: FSWatcher | undefined;
  /** The inode of the folder being watched, to notice it replaced. */
  private watchedIno: number | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private rearm: NodeJS.Timeout | undefined;
  /** Whether an event since the last run concerned the file itself (not just the folder). */
  private fileTouched = false;
  private closed = false;
  private poller: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly logger: WatcherLogger,
    private readonly options: WatcherOptions = DEFAULT_WATCHER_OPTIONS,
  ) {
    this.dir = dirname(file);
    this.name = basename(file);
  }

  /** Starts watching; when the folder is missing, keeps trying (and says so). */
  start(): void {
    if (this.options.pollMs > 0) {
      this.poll();
      return;
    }
    if (this.arm()) {
      this.logger.log(`watching ${this.dir} for changes to ${this.name}`);
    } else {
      this.lost(`cannot watch ${this.dir} yet`);
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.rearm);
    this.rearm = undefined;
    this.unwatch();
    clearInterval(this.poller);
    this.poller = undefined;
  }

  /**
   * Stats the path (not an inode) every pollMs: a save by rename, a removal and a reappearance all change what
   * the path's stat says. The first stat is taken now, so a write right after start() is a change.
   */
  private poll(): void {
    let last = this.fingerprint();
    this.poller = setInterval(() => {
      const now = this.fingerprint();
      if (now === last) return;
      last = now;
      this.fileTouched = true;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.settlePolled(), this.options.debounceMs);
      this.debounce.unref();
    }, this.options.pollMs);
    this.poller.unref();
    this.logger.log(`polling ${this.file} for changes every ${this.options.pollMs} ms`);
  }

  private fingerprint(): string {
    try {
      const stats = statSync(this.file, { bigint: true });
      return `${stats.ino}:${stats.size}:${stats.mtimeNs}`;
    } catch {
      return 'missing';
    }
  }

  private settlePolled(): void {
    if (this.closed || !this.fileTouched) return;
    this.fileTouched = false;
    this.onChange();
  }

  private arm(): boolean {
    if (this.closed) return false;
    try {
      const ino = statSync(this.dir).ino;
      // persistent: false: the watch alone does not keep the process alive.
      const watcher = watch(this.dir, { persistent: false }, (_event, filename) => this.onEvent(filename));
      watcher.on('error', (error: Error) => this.lost(`watching ${this.dir} failed: ${error.message}`));
      this.watcher = watcher;
      this.watchedIno = ino;
      return true;
    } catch {
      return false;
    }
  }

  private unwatch(): void {
    const watcher = this.watcher;
    this.watcher = undefined;
    this.watchedIno = undefined;
    try {
      watcher?.close();
    } catch {
      // already closed by the system
    }
  }

  private onEvent(filename: string | Buffer | null): void {
    if (this.closed) return;
    const name = filename?.toString();
    // No name (some platforms) may be the file; an event on the folder's own name means it moved or went.
    if (name === undefined || name === this.name) this.fileTouched = true;
    else if (name !== basename(this.dir)) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.settle(), this.options.debounceMs);
    this.debounce.unref();
  }

  /** After the events stop: check the folder watch still holds, then report a change to the file. */
  private settle(): void {
    if (this.closed) return;
    if (!this.folderStillWatched()) {
      this.lost(`${this.dir} was removed or replaced`);
      return;
    }
    if (this.fileTouched) {
      this.fileTouched = false;
      this.onChange();
    }
  }

  private folderStillWatched(): boolean {
    try {
      return statSync(this.dir).ino === this.watchedIno;
    } catch {
      return false;
    }
  }

  /** The watch is gone: log it, and try again every rearmMs until the folder is back. */
  private lost(reason: string): void {
    if (this.closed || this.rearm) return;
    this.unwatch();
    this.logger.warn(`${reason}; changes to ${this.name} are not seen until the folder is back (retrying)`);
    this.rearm = setInterval(() => {
      if (!this.arm()) return;
      clearInterval(this.rearm);
      this.rearm = undefined;
      this.logger.log(`watching ${this.dir} again`);
      this.fileTouched = false;
      this.onChange();
    }, this.options.rearmMs);
    this.rearm.unref();
  }
}
