"""Where a cold load goes: a full-size single-file SD1.5 (the random one the suite makes, fp16,
about 2.1 GB) loaded from the page cache (the file is read twice first), split into its steps,
next to the same run's limit: a raw read of the same bytes and a plain cast of them.

    PYTHONPATH=sidecar/src HF_HUB_OFFLINE=1 \
        sidecar/.venv/bin/python bench/cold-load.py [OUT.json] [--runs N] [--dtype float32]

Three loads of the same file, each timed step by step:

* `diffusers`: the pipeline's own from_single_file, as the model host loaded before
  (timers wrapped around diffusers' steps: reading the checkpoint (a mapping of the file),
  key conversion, module construction, weight assignment with the dtype cast, the device
  copy);
* `model host`: the model host's load (engine.single_file), which reports its own steps;
* `limit`: the file read into fresh memory (one read call, no parsing) and its tensor bytes
  cast to the load's dtype (one `Tensor.to`): the issue's limit; and, as one pass, every
  tensor cast straight from the file's mapping, one by one (a mapped loader does not read
  into a buffer first, so it can beat read + cast).

A mapped file is read on first touch, so where the loaders map it the reading shows up in
the step that touches the bytes first (the cast), not in "read". The device is the CPU
unless CUDA is present: "device copy" is then no copy at all. SDXL (6.9 GB, 13 GB as fp32)
is not run here: this machine's RAM is shared.
"""

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers.utils import logging as diffusers_logging
from safetensors.torch import load_file

from modelhost.demo.full_size import full_size_sd15_checkpoint
from modelhost.engine.checkpoint import inspect_single_file, read_safetensors_header
from modelhost.engine.pipelines import DTYPES, PIPELINE_CLASSES, build_pipeline, default_config_dir

LOADERS = ("limit", "diffusers", "model-host")
STEPS = ("read", "header + key conversion", "module construction", "assign + cast", "device copy")


def warm(path: Path) -> None:
    """Reads the whole file twice: the runs below read it from the page cache."""
    for _ in range(2):
        with path.open("rb", buffering=0) as f:
            while f.read(64 * 2**20):
                pass


def limit(path: Path, dtype: torch.dtype) -> dict[str, float]:
    """One read of the file into fresh memory, then one cast of its tensor bytes."""
    size = path.stat().st_size
    started = time.perf_counter()
    buffer = torch.empty(size, dtype=torch.uint8)
    with path.open("rb", buffering=0) as f:
        view = memoryview(buffer.numpy())
        done = 0
        while done < size:
            done += f.readinto(view[done:])
    read = time.perf_counter() - started
    header = read_safetensors_header(path)
    offset = 8 + int.from_bytes(buffer[:8].numpy().tobytes(), "little")
    # The file is one dtype (fp16): its tensor bytes as one tensor, cast at once.
    file_dtype = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}[
        next(iter(header.values())).dtype
    ]
    data = buffer[offset:].view(file_dtype)
    started = time.perf_counter()
    cast = data.to(dtype, copy=True)
    cast_s = time.perf_counter() - started
    del cast, data, buffer
    gc.collect()
    # One pass instead of two: each tensor cast straight from the file's mapping, one by one.
    started = time.perf_counter()
    mapped = load_file(path)
    casts = [tensor.to(dtype, copy=True) for tensor in mapped.values()]
    one_pass = time.perf_counter() - started
    del casts, mapped
    gc.collect()
    return {
        "read": read,
        "cast": cast_s,
        "read + cast": read + cast_s,
        "cast from the mapping": one_pass,
    }


class Stopwatch:
    """Times calls of functions by label, by wrapping them where their callers look them up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        is_class = isinstance(owner, type)
        raw = owner.__dict__.get(name) if is_class else original

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, raw))

    def wrap_context(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[None]:
            started = time.perf_counter()
            try:
                with original(*args, **kwargs):
                    yield
            finally:
                self.seconds[label] += time.perf_counter() - started

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


@contextlib.contextmanager
def diffusers_steps(pipe_to: bool) -> Iterator[dict[str, float]]:
    """Timers around diffusers' single-file steps (reading the checkpoint (a mapping of the
    file), key conversion, module construction, weight assignment with the dtype cast and,
    with `pipe_to`, the pipeline's device copy), where its own code looks them up."""
    from diffusers import DiffusionPipeline
    from diffusers.loaders import single_file, single_file_model, single_file_utils

    watch = Stopwatch()
    watch.wrap(single_file, "load_single_file_checkpoint", "read")
    mapping = single_file_model.SINGLE_FILE_LOADABLE_CLASSES
    originals = {name: dict(entry) for name, entry in mapping.items()}

    def timed_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                watch.seconds["header + key conversion"] += time.perf_counter() - started

        return timed

    for entry in mapping.values():
        entry["checkpoint_mapping_fn"] = timed_fn(entry["checkpoint_mapping_fn"])
    watch.wrap(single_file_utils, "convert_ldm_clip_checkpoint", "header + key conversion")
    watch.wrap(single_file_utils, "convert_open_clip_checkpoint", "header + key conversion")
    watch.wrap_context(single_file_model, "init_empty_weights", "module construction")
    watch.wrap_context(single_file_utils, "init_empty_weights", "module construction")
    watch.wrap(single_file_model, "load_model_dict_into_meta", "assign + cast")
    watch.wrap(single_file_utils, "load_model_dict_into_meta", "assign + cast")
    if pipe_to:
        watch.wrap(DiffusionPipeline, "to", "device copy")
    try:
        yield watch.seconds
    finally:
        watch.restore()
        for name, entry in originals.items():
            mapping[name].update(entry)


def diffusers_load(path: Path, config: str, dtype: torch.dtype, device: torch.device) -> dict:
    """diffusers' from_single_file, as the model host loaded before."""
    started = time.perf_counter()
    with diffusers_steps(pipe_to=True) as seconds:
        inspect_single_file(path)
        seconds["header + key conversion"] += time.perf_counter() - started
        pipe = PIPELINE_CLASSES["sd15"].from_single_file(
            str(path), config=config, torch_dtype=dtype, local_files_only=True
        )
        pipe.to(device)
    total = time.perf_counter() - started
    del pipe
    gc.collect()
    return steps_of(dict(seconds), total)


def model_host_load(path: Path, config: str, dtype: torch.dtype, device: torch.device) -> dict:
    """The model host's own load (build_pipeline), with the steps it reports."""
    from modelhost.engine import single_file

    started = time.perf_counter()
    inspect_single_file(path)
    header = time.perf_counter() - started
    # The parts diffusers still loads (text encoders, tokenizers, scheduler) timed as above.
    with single_file.recorded_steps() as seconds, diffusers_steps(pipe_to=False) as theirs:
        pipe = build_pipeline(path, "sd15", config, dtype, device)
    total = time.perf_counter() - started
    for step, value in theirs.items():
        seconds[step] = seconds.get(step, 0.0) + value
    seconds["header + key conversion"] = seconds.get("header + key conversion", 0.0) + header
    del pipe
    gc.collect()
    return steps_of(seconds, total)


def steps_of(seconds: dict[str, float], total: float) -> dict[str, float]:
    steps = {step: seconds.get(step, 0.0) for step in STEPS}
    steps["other"] = max(0.0, total - sum(steps.values()))
    steps["total"] = total
    return steps


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def measure_one(name: str, dtype_name: str) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[dtype_name]
    path = full_size_sd15_checkpoint()
    config = default_config_dir(inspect_single_file(path))
    if name == "limit":
        return limit(path, dtype)
    if name == "diffusers":
        return diffusers_load(path, config, dtype, device)
    return model_host_load(path, config, dtype, device)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtype", default="", help="default: the device's (fp32 on a CPU)")
    parser.add_argument("--only", choices=LOADERS, action="append")
    parser.add_argument("--one", choices=LOADERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype or ("float16" if device.type == "cuda" else "float32")
    if args.one:
        print(json.dumps(measure_one(args.one, dtype_name)))
        return
    path = full_size_sd15_checkpoint()
    warm(path)
    which = args.only or list(LOADERS)
    results: dict[str, Any] = {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "dtype": dtype_name,
        "device": str(device),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "runs": args.runs,
        "load_average_before": os.getloadavg(),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in which}
    # Each measurement in a process of its own (what one freed, the next must not reuse),
    # interleaved and in turned order each round, so that a shared machine's slow minute
    # costs every loader alike.
    for round_ in range(args.runs):
        for name in which if round_ % 2 == 0 else reversed(which):
            command = [sys.executable, __file__, "--one", name, "--dtype", dtype_name]
            measured = json.loads(
                subprocess.run(command, check=True, capture_output=True, text=True).stdout
            )
            runs[name].append(measured)
            print(name, {k: round(v, 3) for k, v in measured.items()}, file=sys.stderr)
    for name in which:
        results[name] = median_of(runs[name])
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
