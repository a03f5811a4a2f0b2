"""The inventory: every model file under the model roots, kept fresh by watchdog.

Any relevant file-system event under a root marks that root dirty; a scanner thread
waits a moment for the burst to settle (a copy writes many chunks, an editor writes a
temporary file and renames it) and then rescans the root. A rescan walks the tree and
stats each file, but only reads the header of files whose size or mtime changed since
the last scan, so it costs milliseconds for hundreds of files. Rescanning the root
rather than patching single entries makes every event order (moves of folders, a file
replaced by rename, a diffusers folder gaining its model_index.json) come out right.

Pickle files are listed but never opened here: unpickling can run code, and the
inventory runs whatever lands in a watched folder.

The host asks the inventory whether a loaded file changed (changed_since) instead of
stat-ing it per memory query: the answer follows the disk within one settle period.
"""

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from modelhost.engine.checkpoint import (
    PICKLE_SUFFIXES,
    TensorInfo,
    detect_architecture,
    inspect_diffusers_folder,
    read_safetensors_header,
)
from modelhost.engine.files import Fingerprint, fingerprint
from modelhost.engine.roots import outermost, resolve_roots
from modelhost.engine.types import FileUse
from modelhost.errors import ModelHostError

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
MODEL_SUFFIXES = frozenset({SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES})
DIFFUSERS_INDEX = "model_index.json"
# Reading a header updates atime (an attrib event) and opens the file: neither is a
# change, and reacting to them would rescan after every scan.
_IGNORED_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})
# Substrings of the keys of LoRA files in the formats in use: kohya/A1111 (lora_unet_,
# lora_te_, lora_down/lora_up), peft/diffusers (.lora_A./.lora_B.), older diffusers
# (.lora.down., lora_linear_layer).
_LORA_MARKERS = (
    "lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", ".lora_A.", ".lora_B.",
    "lora_down", "lora_up", ".lora.down.", ".lora.up.", "lora_linear_layer",
)  # fmt: skip
DEFAULT_SETTLE_SECONDS = 0.1
DEFAULT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ModelFileInfo:
    path: str
    root: str
    architecture: str  # sd15, sd2, sdxl-base, sdxl-refiner, lora, upscaler, unknown
    format: str  # safetensors, pickle, diffusers, diffusers-config
    size_bytes: int
    mtime_unix_ms: int
    reason: str = ""  # why the architecture is unknown
    resident_keys: tuple[str, ...] = ()
    stale: bool = False


@dataclass(frozen=True)
class _Entry:
    info: ModelFileInfo
    resolved: str  # to match the host's resolved paths (symlinks in the roots)
    fingerprint: Fingerprint


# ------------------------------------------------------------------ detection


def is_lora(keys: Sequence[str] | Mapping[str, object]) -> bool:
    return any(marker in key for key in keys for marker in _LORA_MARKERS)


def detect_upscaler(tensors: Mapping[str, TensorInfo]) -> bool:
    """Whether spandrel recognises the file as an image model, from names and shapes
    alone: its detectors only look at keys and `.shape`, which the header has."""
    try:
        from spandrel import MAIN_REGISTRY
        from spandrel.__helpers.canonicalize import canonicalize_state_dict
    except ImportError:  # pragma: no cover - spandrel is a dependency
        return False
    state: dict[str, object] = canonicalize_state_dict(dict(tensors))  # type: ignore[arg-type]
    for support in MAIN_REGISTRY.architectures("detection"):
        try:
            if support.detect(state):  # type: ignore[arg-type]
                return True
        except Exception:  # a detector that needs real tensors says no
            continue
    return False


def describe_file(path: Path, root: Path, fp: Fingerprint) -> ModelFileInfo:
    """Architecture and format of one single-file model, from its header."""
    base = ModelFileInfo(
        path=str(path),
        root=str(root),
        architecture="unknown",
        format="safetensors",
        size_bytes=fp.size,
        mtime_unix_ms=fp.mtime_unix_ms,
    )
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return replace(
            base,
            format="pickle",
            reason="pickle file: not opened by the inventory (unpickling can run code); "
            "its architecture is detected when it is loaded",
        )
    try:
        tensors = read_safetensors_header(path)
    except ModelHostError as e:
        return replace(base, reason=str(e))
    except OSError as e:
        return replace(base, reason=f"unreadable: {e.strerror or e}")
    if is_lora(tensors):
        return replace(base, architecture="lora")
    try:
        return replace(base, architecture=detect_architecture(tensors))
    except ModelHostError as e:
        reason = str(e)
    if detect_upscaler(tensors):
        return replace(base, architecture="upscaler")
    return replace(base, reason=f"{reason}; not a LoRA or a known upscaler either")


def describe_folder(path: Path, root: Path, fp: Fingerprint) -> ModelFileInfo:
    has_weights = any(p.suffix.lower() in MODEL_SUFFIXES for p in path.glob("*/*") if p.is_file())
    info = ModelFileInfo(
        path=str(path),
        root=str(root),
        architecture="unknown",
        format="diffusers" if has_weights else "diffusers-config",
        size_bytes=fp.size,
        mtime_unix_ms=fp.mtime_unix_ms,
    )
    try:
        return replace(info, architecture=inspect_diffusers_folder(path).architecture)
    except ModelHostError as e:
        return replace(info, reason=str(e))
    except OSError as e:
        return replace(info, reason=f"unreadable: {e.strerror or e}")


# ------------------------------------------------------------------ inventory


class _Handler(FileSystemEventHandler):
    def __init__(self, inventory: "Inventory", root: Path) -> None:
        self.inventory = inventory
        self.root = root

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _IGNORED_EVENTS:
            self.inventory.mark_dirty(self.root)


class Inventory:
    """Model files under `roots`. start() scans once and starts watching; files()
    answers from memory. With `polling`, watchdog's PollingObserver compares directory
    snapshots every `poll_seconds` instead of waiting for OS events, which do not
    arrive through some bind mounts and network file systems."""

    def __init__(
        self,
        roots: Sequence[Path],
        *,
        polling: bool = False,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    ) -> None:
        self.roots: tuple[Path, ...] = _watched_roots(roots)
        self.polling = polling
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self._lock = threading.Lock()
        # Held for a whole rescan, and while the roots are replaced: a rescan of a root
        # that was just dropped must not bring its entries back.
        self._scan_lock = threading.Lock()
        self._entries: dict[Path, dict[str, _Entry]] = {root: {} for root in self.roots}
        # Roots that are watched (folders when last set), and every listed file's
        # fingerprint by resolved path: what changed_since answers from.
        self._watched: tuple[str, ...] = ()
        self._current: dict[str, Fingerprint] = {}
        self._dirty: set[Path] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._observer: BaseObserver | None = None
        self._scanner: threading.Thread | None = None
        self.scans = 0  # completed rescans; tests and logs

    def start(self) -> None:
        """Scans every root, then watches them. A root that does not exist is logged
        and skipped: the model host still serves the rest."""
        with self._scan_lock:
            self._watch(self.roots)

    def set_roots(self, roots: Sequence[Path | str]) -> tuple[Path, ...]:
        """Replaces the roots: stops watching the old ones, scans and watches the new.
        Returns them resolved, without those inside another."""
        resolved = _watched_roots(roots)
        with self._scan_lock:
            if self._observer is not None:
                self._observer.unschedule_all()
            with self._lock:
                self.roots = resolved
                self._entries = {root: {} for root in resolved}
                self._dirty.clear()
            self._watch(resolved)
        return resolved

    def _watch(self, roots: tuple[Path, ...]) -> None:
        """Under the scan lock: watches and scans `roots`, starting the watcher threads
        the first time there is a root."""
        if not roots:
            self._index()
            return
        if self._observer is None:
            observer: BaseObserver = (
                PollingObserver(timeout=self.poll_seconds) if self.polling else Observer()
            )
            observer.daemon = True
            observer.start()
            self._observer = observer
            self._scanner = threading.Thread(target=self._run, name="inventory", daemon=True)
            self._scanner.start()
        watched: list[str] = []
        for root in roots:
            if not root.is_dir():
                log.warning("model root %s is not a folder: not watched", root)
                continue
            # Watch before the first scan, so nothing written in between is missed.
            self._observer.schedule(_Handler(self, root), str(root), recursive=True)
            watched.append(str(root))
        with self._lock:
            self._watched = tuple(watched)
        for root in roots:
            self._rescan(root)
        log.info(
            "watching %d model root(s)%s: %d model file(s)",
            len(watched),
            " by polling" if self.polling else "",
            len(self.files()),
        )

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._scanner is not None:
            self._scanner.join(timeout=5)

    def changed_since(self, path: str, loaded: Fingerprint | None) -> bool:
        """Whether the file at `path` (resolved) differs from `loaded`, as of the last
        scan; a listed file that left counts as changed. False for a file the inventory
        does not watch (outside the roots, or under a hidden name it skips): it cannot
        tell."""
        with self._lock:
            root = next((r for r in self._watched if path.startswith(r + os.sep)), None)
            if root is None or any(p.startswith(".") for p in Path(path[len(root) + 1 :]).parts):
                return False
            return self._current.get(path) != loaded

    def mark_dirty(self, root: Path) -> None:
        with self._lock:
            self._dirty.add(root)
        self._wake.set()

    def files(self, uses: Mapping[str, FileUse] | None = None) -> list[ModelFileInfo]:
        """Every model file, sorted by path; `uses` (by resolved path, from the host)
        adds which keys are loaded from each file and whether they are stale."""
        with self._lock:
            entries = [e for per_root in self._entries.values() for e in per_root.values()]
        result: list[ModelFileInfo] = []
        for entry in sorted(entries, key=lambda e: e.info.path):
            use = (uses or {}).get(entry.resolved)
            info = entry.info
            if use is not None:
                info = replace(info, resident_keys=use.keys, stale=use.stale)
            result.append(info)
        return result

    # --------------------------------------------------------------- scanning

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            # Let a burst of events settle; events during the wait join this rescan.
            if self._stopping.wait(self.settle_seconds):
                return
            self._wake.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            with self._scan_lock:
                for root in dirty:
                    try:
                        self._rescan(root)
                    except Exception:  # the watcher must outlive any one bad file or folder
                        log.exception("rescanning %s failed", root)

    def _rescan(self, root: Path) -> None:
        if root not in self.roots:
            return  # dropped by set_roots after it was marked dirty
        with self._lock:
            known = dict(self._entries.get(root, {}))
        fresh: dict[str, _Entry] = {}
        for path, is_folder in _model_paths(root):
            fp = fingerprint(path)
            if fp is None:
                continue  # left while we walked
            key = str(path)
            old = known.get(key)
            if old is not None and old.fingerprint == fp:
                fresh[key] = old
                continue
            info = describe_folder(path, root, fp) if is_folder else describe_file(path, root, fp)
            fresh[key] = _Entry(info=info, resolved=str(path.resolve()), fingerprint=fp)
        with self._lock:
            self._entries[root] = fresh
            self.scans += 1
        self._index()

    def _index(self) -> None:
        with self._lock:
            self._current = {
                e.resolved: e.fingerprint
                for per_root in self._entries.values()
                for e in per_root.values()
            }


def _watched_roots(roots: Sequence[Path | str]) -> tuple[Path, ...]:
    return tuple(Path(r) for r in outermost(resolve_roots(roots)))


def _model_paths(root: Path) -> list[tuple[Path, bool]]:
    """(path, is a diffusers folder) for every model under root. Hidden files and
    folders are skipped: copy tools and our own writers stage files under dot-names."""
    found: list[tuple[Path, bool]] = []
    if not root.is_dir():
        return found
    for folder, dirs, names in os.walk(root):
        if DIFFUSERS_INDEX in names:
            found.append((Path(folder), True))
            dirs.clear()  # its components belong to the folder, not listed alone
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in MODEL_SUFFIXES:
                path = Path(folder) / name
                if path.is_file():
                    found.append((path, False))
    return found
