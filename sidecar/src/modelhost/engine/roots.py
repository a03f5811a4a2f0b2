"""The folders the model host may read models from, whoever asks it to load.

Every path a load names is resolved with its symlinks (os.path.realpath) and must lie
inside one of the resolved roots: a link inside a root that points elsewhere is refused
before anything behind it is opened. Comparing path text alone would let
`root/link.safetensors -> /elsewhere/x.safetensors` through.

No roots at all means no restriction: a model host started without --model-root /
MODEL_ROOTS (in-process tests, a bare `serve`) loads what it is told, as it always did.
The gateway sets the roots of its modes file with SetModelRoots before its first load.
"""

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelhost.errors import InvalidRequestError


def resolve_roots(roots: Iterable[str | Path]) -> tuple[str, ...]:
    """Each root resolved, duplicates dropped, order kept."""
    unique: list[str] = []
    for root in roots:
        resolved = os.path.realpath(os.path.expanduser(root))
        if resolved not in unique:
            unique.append(resolved)
    return tuple(unique)


def outermost(roots: Sequence[str]) -> tuple[str, ...]:
    """The resolved roots without those inside another (lora_root is often model_root/loras):
    what a watcher walks, so that no file is listed twice."""
    return tuple(
        root
        for root in roots
        if not any(root != other and root.startswith(other + os.sep) for other in roots)
    )


class ModelRoots:
    """An immutable set of resolved roots; replace the object to change them."""

    def __init__(self, roots: Sequence[str | Path] = ()) -> None:
        self.roots = resolve_roots(roots)

    @property
    def restricted(self) -> bool:
        return bool(self.roots)

    def contains(self, resolved: str) -> bool:
        return any(resolved == root or resolved.startswith(root + os.sep) for root in self.roots)

    def check(self, field: str, path: str) -> None:
        """Refuses `path` (and, for a folder, anything inside it) unless it resolves
        inside a root. Reads only links and folder listings, never file contents."""
        if not self.restricted or not path:
            return
        self._check_one(field, path, path)
        if os.path.isdir(path):
            self._check_tree(field, path)

    def _check_one(self, field: str, named: str, path: str) -> str:
        resolved = os.path.realpath(path)
        if not self.contains(resolved):
            what = named if path == named else f"{path} (inside {named})"
            raise InvalidRequestError(
                f"{field}: {what} resolves outside the model roots "
                f"({', '.join(self.roots)}); refused"
            )
        return resolved

    def _check_tree(self, field: str, folder: str) -> None:
        """Every entry of a folder model (a diffusers pipeline, a config folder):
        its components are opened by path too, and may be links of their own."""
        seen = {os.path.realpath(folder)}
        for current, dirs, names in os.walk(folder, followlinks=True):
            for name in names:
                self._check_one(field, folder, os.path.join(current, name))
            kept = []
            for name in dirs:
                resolved = self._check_one(field, folder, os.path.join(current, name))
                if resolved not in seen:  # a link back up would walk forever
                    seen.add(resolved)
                    kept.append(name)
            dirs[:] = kept
