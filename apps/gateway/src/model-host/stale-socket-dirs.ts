import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';

import type { Logger } from '@nestjs/common';

import { SOCKET_DIR_PATTERN } from './model-host-endpoint.js';

/**
 * Removes the socket folders of gateways that are gone (SIGKILLed, say: nothing of theirs ran to remove them).
 * Only folders that match the name pattern, belong to this user and whose gateway pid no longer runs.
 */
export function removeStaleSocketDirs(parent: string, logger?: Logger): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const pid = SOCKET_DIR_PATTERN.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || isRunning(Number(pid))) continue;
    const path = join(parent, name);
    try {
      const stat = lstatSync(path);
      if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
      logger?.log(`removed ${basename(path)}, the socket folder of gateway pid ${pid} that is gone`);
    } catch {
      // Gone meanwhile, or not ours to remove: either way nothing to do.
    }
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the pid runs, as another user's process.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
