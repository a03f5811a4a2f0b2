import { lstatSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Links followed while resolving one path before it counts as a loop (Linux's own limit is 40). */
const MAX_LINK_HOPS = 40;

/**
 * Real paths (every symbolic link followed) for the paths of one modes file. Each path, and so each folder, is
 * looked at once however many modes name it: a file that is not a link has its folder's real path plus its own
 * name, so the files of one folder cost one lstat(2) each and the folder one realpath. Make one per parse and
 * drop it after: a link can be changed between two reloads, and a kept answer would then be a wrong one.
 */
export class RealPaths {
  private readonly known = new Map<string, string>();

  /**
   * `path` (absolute) with every symbolic link followed. Where the file is missing, its nearest existing folder is
   * resolved and the rest kept as written; a link whose target is missing is followed by its text, so that a
   * dangling link cannot point outside today and be filled in tomorrow. Throws on a link loop.
   */
  of(path: string): string {
    return this.follow(path, 0);
  }

  /** `hops`: the links followed so far on the way to `path`. */
  private follow(path: string, hops: number): string {
    const known = this.known.get(path);
    if (known !== undefined) return known;
    const parent = dirname(path);
    let real: string;
    if (parent === path) {
      real = path;
    } else if (lstatOrUndefined(path)?.isSymbolicLink()) {
      real = this.followLink(path, hops);
    } else {
      // Not a link (or missing, or not reachable): its real path is its folder's, and the folder is shared.
      real = join(this.follow(parent, hops), basename(path));
    }
    this.known.set(path, real);
    return real;
  }

  private followLink(path: string, hops: number): string {
    try {
      // The native realpath(3): one call, where Node's JS one lstat()s each component again.
      return realpathSync.native(path);
    } catch {
      // Dangling, a loop, or a link that cannot be read through: followed by its text below.
    }
    if (hops >= MAX_LINK_HOPS) throw new Error(`more than ${MAX_LINK_HOPS} symbolic links (a loop?)`);
    return this.follow(resolve(dirname(path), readlinkSync(path)), hops + 1);
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    // ENOTDIR (a file used as a folder), EACCES: treated like a missing file, as realpath(3) failing was before.
    return undefined;
  }
}
