"""What a model file looks like on disk right now, to tell whether it changed."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fingerprint:
    """Size and modification time: what copy tools, editors and `touch` all change.

    Not a content hash: hashing gigabytes on every question would cost seconds, and a
    file rewritten with the same bytes is rare enough to be reported as changed.
    """

    size: int
    mtime_ns: int

    @property
    def mtime_unix_ms(self) -> int:
        return self.mtime_ns // 1_000_000


def fingerprint(path: Path) -> Fingerprint | None:
    """The file's fingerprint; a folder's is the sum of its files' sizes and the newest
    mtime among them (a diffusers folder changes when any component does). None when
    the path is gone."""
    try:
        if not path.is_dir():
            st = path.stat()
            return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns)
        size, newest = 0, path.stat().st_mtime_ns
        for folder, _dirs, names in os.walk(path):
            for name in names:
                try:
                    st = os.stat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue  # left while we walked
                size += st.st_size
                newest = max(newest, st.st_mtime_ns)
        return Fingerprint(size=size, mtime_ns=newest)
    except FileNotFoundError:
        return None
