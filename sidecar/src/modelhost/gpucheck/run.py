"""The GPU check: what loading, switching and generating cost on a real device.

1. Builds SD1.5 and SDXL pipelines with random weights from the model configs bundled
   in modelhost.configs (the released models' own UNet, VAE and text-encoder configs; the
   tokenizer is the demo's in-memory one). Weights are created on the device itself
   (`with torch.device(...)`), which takes seconds where CPU init takes minutes.
2. Saves each as a single-file checkpoint in the original key layout
   (modelhost.demo.ldm_keys; the tiny ones also get a config folder) in a local
   temporary folder, and drops the file from the page cache so that the first load
   reads the disk.
3. Through the real ModelHost: a cold load of each, a timed generation (20 steps at
   512x512 for SD1.5, 1024x1024 for SDXL) after a one-step warm-up, a switch between
   resident models, and (with a memory cap that fits one model and a RAM tier) a switch
   back from system memory; memory_allocated after each load and after each unload, and
   the peak.
4. Bandwidth, each figure next to its own limit measured in the same run (CUDA only):
   the cold load in GB/s next to reading the same file from disk, and the RAM-tier
   switch in GB/s next to one page-locked host-to-device copy of the same size.

`--tiny` runs the same code on the demo's tiny models, on the CPU, at 64x64 and 2 steps;
the test suite runs it so that this script cannot rot. On CPU, "allocated" is the
host's own parameter-byte accounting and the peak is the process's maximum RSS.

No network: HF_HUB_OFFLINE is set before diffusers is imported; the full-size files load
with no config folder (the bundled ones, as a user's checkpoint would), the tiny ones
with theirs. On an H100 the whole run takes about two minutes (most of it writing
and reading 9 GB of checkpoints).

One file of about 500 lines on purpose: it is one script run by hand on a lent GPU,
read top to bottom with its printed table, and no other code imports its parts.
"""

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
)
from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
    StableDiffusionXLPipeline,
)

from modelhost.configs import component_config
from modelhost.demo.factory import write_config_folder
from modelhost.demo.full_size import build_random_pipeline, save_checkpoint
from modelhost.demo.ldm_keys import pipeline_to_ldm_state_dict
from modelhost.demo.tiny import tiny_sd15_pipeline, tiny_sdxl_pipeline
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GenerateParams, LoadSource, LoadSpec, MemoryPolicy

FAMILIES = ("sd15", "sdxl")
COMPONENTS = {
    "sd15": ("unet", "vae", "text_encoder"),
    "sdxl": ("unet", "vae", "text_encoder", "text_encoder_2"),
}
# The bundled (released) config folder each family is built from.
BUNDLED = {"sd15": "sd15", "sdxl": "sdxl-base"}
FULL_SIZE = {"sd15": 512, "sdxl": 1024}
FULL_STEPS = 20
TINY_SIZE = 64
TINY_STEPS = 2
GUIDANCE = 7.0  # classifier-free guidance on: two UNet passes per step, as users run it
PROMPT = "a lighthouse on a cliff at dawn, detailed, photograph"
# After every model is unloaded, memory_allocated may differ from its baseline by
# allocator rounding at most; more than this is a leak.
BASELINE_TOLERANCE_BYTES = 1 << 20
GIB = 1 << 30
GB = 10**9  # bandwidths in GB/s, as buses and disks are rated
READ_CHUNK = 64 << 20


class CheckError(Exception):
    """A precondition of the check failed; the message says what to do."""


@dataclass
class Row:
    model: str
    architecture: str = ""
    size: str = ""
    steps: int = 0
    checkpoint_bytes: int = 0
    load_bytes: int = 0  # what LoadModel reported
    cold_load_s: float = 0.0
    resident_switch_s: float = 0.0
    ram_switch_s: float | None = None  # None: needs two models
    generate_s: float = 0.0
    allocated_after_load: int = 0
    allocated_after_unload: int = 0
    peak_bytes: int = 0
    # CUDA only (None elsewhere): checkpoint bytes / cold load time, next to the file's
    # read speed from disk; device bytes / RAM-tier switch time (which includes parking the
    # other model), next to a page-locked host-to-device copy of as many bytes.
    cold_load_gbps: float | None = None
    file_read_gbps: float | None = None
    ram_switch_gbps: float | None = None
    pinned_copy_gbps: float | None = None


@dataclass
class Report:
    device: str
    device_name: str
    tiny: bool
    dtype: str
    memory_measure: str
    peak_measure: str
    rows: list[Row] = field(default_factory=list)
    baseline_allocated: int = 0
    final_allocated: int = 0
    returned_to_baseline: bool = False
    build_s: float = 0.0
    save_s: float = 0.0
    total_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ building


def component_configs(family: str, tiny: bool) -> dict[str, dict[str, Any]]:
    """The UNet, VAE and text-encoder configs of the family: the released models'
    (modelhost.configs) or, with tiny, those of the demo's tiny models."""
    if tiny:
        pipe = tiny_sd15_pipeline() if family == "sd15" else tiny_sdxl_pipeline()
        configs: dict[str, dict[str, Any]] = {}
        for name in COMPONENTS[family]:
            component = getattr(pipe, name)
            config = component.config
            configs[name] = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        return configs
    return {name: component_config(BUNDLED[family], name) for name in COMPONENTS[family]}


def weight_bytes(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline) -> int:
    return sum(
        t.numel() * t.element_size()
        for component in pipe.components.values()
        if isinstance(component, torch.nn.Module)
        for t in component.state_dict().values()
    )


def pipe_state(
    pipe: StableDiffusionPipeline | StableDiffusionXLPipeline,
) -> dict[str, torch.Tensor]:
    return pipeline_to_ldm_state_dict(pipe)


def read_seconds(path: Path) -> float:
    """How long reading the whole file from disk takes: dropped from the page cache first."""
    drop_from_page_cache(path)
    buffer = bytearray(READ_CHUNK)
    started = time.perf_counter()
    with path.open("rb", buffering=0) as file:
        while file.readinto(buffer):
            pass
    return time.perf_counter() - started


def pinned_copy_seconds(size: int, device: Device) -> float:
    """One host-to-device copy of `size` bytes from page-locked memory: the bus's limit
    for a RAM-tier switch of that size."""
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    target = torch.empty(size, dtype=torch.uint8, device=device.torch_device)
    target[:1].copy_(host[:1], non_blocking=True)  # warm-up: context, copy engine
    torch.cuda.synchronize(device.torch_device)
    started = time.perf_counter()
    target.copy_(host, non_blocking=True)
    torch.cuda.synchronize(device.torch_device)
    return time.perf_counter() - started


def drop_from_page_cache(path: Path) -> None:
    """Asks the kernel to forget the file's cached pages, so that a "cold" load reads the
    disk rather than memory. Needs no privileges; a no-op where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --------------------------------------------------------------- measuring


class Meter:
    """memory_allocated and its peak on CUDA; the host's accounting and max RSS on CPU."""

    def __init__(self, device: Device, host: Callable[[], ModelHost]) -> None:
        self.device = device
        self.host = host

    def allocated(self) -> int:
        if self.device.is_cuda:
            torch.cuda.synchronize(self.device.torch_device)
            return torch.cuda.memory_allocated(self.device.torch_device)
        return sum(m.bytes for m in self.host().memory().models)

    def reset_peak(self) -> None:
        if self.device.is_cuda:
            torch.cuda.reset_peak_memory_stats(self.device.torch_device)

    def peak(self) -> int:
        if self.device.is_cuda:
            return torch.cuda.max_memory_allocated(self.device.torch_device)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _generate(host: ModelHost, key: str, size: int, steps: int) -> None:
    params = GenerateParams(
        key=key, prompt=PROMPT, negative_prompt="", width=size, height=size,
        steps=steps, guidance_scale=GUIDANCE, seed=0,
    )  # fmt: skip
    host.generate(params, lambda _progress: None, threading.Event())


def _spec(key: str, checkpoints: dict[str, tuple[Path, Path | None]], dtype: str) -> LoadSpec:
    model, config = checkpoints[key]
    return LoadSpec(key=key, model_path=str(model), config_dir=str(config or ""), dtype=dtype)


def run_check(
    families: list[str],
    *,
    tiny: bool,
    device_name: str | None,
    workdir: Path,
    steps: int | None = None,
    log: Callable[[str], None] = print,
) -> Report:
    started = time.perf_counter()
    device = Device(device_name)
    if not tiny and not device.is_cuda:
        raise CheckError(
            f"no CUDA device ({device.label}; torch.cuda.is_available() is "
            f"{torch.cuda.is_available()}): the full-size check needs a GPU. "
            "Run with --tiny for the CPU smoke run."
        )
    dtype = device.default_dtype()
    dtype_name = {torch.float16: "float16", torch.float32: "float32"}[dtype]
    size_of = {f: TINY_SIZE if tiny else FULL_SIZE[f] for f in families}
    steps = steps or (TINY_STEPS if tiny else FULL_STEPS)
    report = Report(
        device=device.label,
        device_name=device.display_name,
        tiny=tiny,
        dtype=dtype_name,
        memory_measure="torch.cuda.memory_allocated" if device.is_cuda else "host accounting",
        peak_measure="torch.cuda.max_memory_allocated" if device.is_cuda else "process max RSS",
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
        },
    )

    # 1-2. Random pipelines on the device, saved as single files with config folders.
    checkpoints: dict[str, tuple[Path, Path | None]] = {}
    rows = {f: Row(model=f, size=f"{size_of[f]}x{size_of[f]}", steps=steps) for f in families}
    for family in families:
        log(f"building {family} with random weights on {device.label}")
        started_build = time.perf_counter()
        pipe = build_random_pipeline(
            family, component_configs(family, tiny), device.torch_device, dtype
        )
        report.build_s += time.perf_counter() - started_build
        needed = weight_bytes(pipe) * 11 // 10
        free = shutil.disk_usage(workdir).free
        if free < needed:
            raise CheckError(
                f"{workdir} has {free / GIB:.1f} GiB free, the {family} checkpoint needs "
                f"{needed / GIB:.1f} GiB: pass --workdir on a larger local disk"
            )
        model = workdir / f"{family}.safetensors"
        # Full size: no config folder, as users load their checkpoints; the model host
        # reads the file with the bundled folder of the family it detects. The tiny
        # models' shapes are their own, so they carry theirs.
        config = workdir / f"{family}.config" if tiny else None
        log(f"saving {model}")
        started_save = time.perf_counter()
        size = save_checkpoint(pipe, model)
        if config is not None:
            write_config_folder(pipe, config)
        report.save_s += time.perf_counter() - started_save
        rows[family].checkpoint_bytes = size
        checkpoints[family] = (model, config)
        del pipe
        device.release_cached_memory()

    # Each phase's host lives in its own function: when it returns, no reference to a
    # pipeline is left, and the memory figures after it mean what they say.
    _measure_loads_and_generations(device, families, checkpoints, dtype_name, rows, report, log)
    device.release_cached_memory()
    if len(families) >= 2:
        _measure_ram_tier(device, families, checkpoints, dtype_name, rows, log)
        device.release_cached_memory()

    report.rows = [rows[f] for f in families]
    report.total_s = time.perf_counter() - started
    return report


def _measure_loads_and_generations(
    device: Device,
    families: list[str],
    checkpoints: dict[str, tuple[Path, Path | None]],
    dtype_name: str,
    rows: dict[str, Row],
    report: Report,
    log: Callable[[str], None],
) -> None:
    """Cold loads and generations, all models resident in the end; then switches
    between them, and unloads."""
    host = ModelHost(device)
    meter = Meter(device, lambda: host)
    report.baseline_allocated = meter.allocated()
    for family in families:
        row = rows[family]
        size = int(row.size.split("x")[0])
        if device.is_cuda:
            row.file_read_gbps = row.checkpoint_bytes / read_seconds(checkpoints[family][0]) / GB
        drop_from_page_cache(checkpoints[family][0])
        meter.reset_peak()
        log(f"cold load of {family}")
        result = host.load(_spec(family, checkpoints, dtype_name))
        if result.source != LoadSource.DISK:
            raise CheckError(f"{family}: a first load came from {result.source.value}")
        row.architecture = result.architecture
        row.load_bytes = result.bytes
        row.cold_load_s = result.load_seconds
        if device.is_cuda:
            row.cold_load_gbps = row.checkpoint_bytes / result.load_seconds / GB
        row.allocated_after_load = meter.allocated()
        log(f"generating with {family} at {row.size}, {row.steps} steps")
        _generate(host, family, size, 1)  # warm-up: kernels, autotuning
        started = time.perf_counter()
        _generate(host, family, size, row.steps)
        row.generate_s = time.perf_counter() - started
        row.peak_bytes = meter.peak()
    for family in families:
        started = time.perf_counter()
        result = host.load(_spec(family, checkpoints, dtype_name))
        rows[family].resident_switch_s = time.perf_counter() - started
        if result.source != LoadSource.RESIDENT:
            raise CheckError(f"{family}: expected to be resident, came from {result.source.value}")
    # Last loaded first: each row's "after unload" is then its "after load" minus itself.
    for family in reversed(families):
        host.unload(family)
        rows[family].allocated_after_unload = meter.allocated()
    report.final_allocated = meter.allocated()
    report.returned_to_baseline = (
        abs(report.final_allocated - report.baseline_allocated) <= BASELINE_TOLERANCE_BYTES
    )


def _measure_ram_tier(
    device: Device,
    families: list[str],
    checkpoints: dict[str, tuple[Path, Path | None]],
    dtype_name: str,
    rows: dict[str, Row],
    log: Callable[[str], None],
) -> None:
    """A cap that holds the biggest model but not two, so that each load parks the other
    in system memory and the next switch brings it back from there."""
    sizes = [rows[f].load_bytes for f in families]
    policy = MemoryPolicy(cap_bytes=max(sizes) + min(sizes) // 2, ram_cache_bytes=2 * sum(sizes))
    host = ModelHost(device, policy=policy)
    log("RAM-tier switches")
    for family in families:
        host.load(_spec(family, checkpoints, dtype_name))
    for family in families:
        result = host.load(_spec(family, checkpoints, dtype_name))
        if result.source != LoadSource.RAM:
            raise CheckError(
                f"{family}: expected to come back from the RAM tier, "
                f"came from {result.source.value}"
            )
        row = rows[family]
        row.ram_switch_s = result.load_seconds
        if device.is_cuda:
            row.ram_switch_gbps = row.load_bytes / result.load_seconds / GB
    for family in families:
        host.unload(family)
    del host
    if device.is_cuda:
        device.release_cached_memory()
        for family in families:
            row = rows[family]
            row.pinned_copy_gbps = row.load_bytes / pinned_copy_seconds(row.load_bytes, device) / GB


# ------------------------------------------------------------------ output

COLUMNS = (
    ("model", "model"),
    ("architecture", "arch"),
    ("cold_load_s", "cold load s"),
    ("resident_switch_s", "resident switch s"),
    ("ram_switch_s", "RAM-tier switch s"),
    ("size", "size"),
    ("steps", "steps"),
    ("generate_s", "generate s"),
    ("allocated_after_load", "alloc after load"),
    ("allocated_after_unload", "alloc after unload"),
    ("peak_bytes", "peak"),
    ("cold_load_gbps", "cold load GB/s"),
    ("file_read_gbps", "file read GB/s"),
    ("ram_switch_gbps", "RAM-tier GB/s"),
    ("pinned_copy_gbps", "pinned H2D GB/s"),
)
_BYTE_COLUMNS = {"allocated_after_load", "allocated_after_unload", "peak_bytes"}


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if name in _BYTE_COLUMNS:
        return f"{value / GIB:.2f} GiB" if value >= GIB / 100 else f"{value / 2**20:.1f} MiB"
    if name == "resident_switch_s":
        return f"{value * 1000:.2f} ms"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render_table(report: Report) -> str:
    header = [title for _, title in COLUMNS]
    body = [[_cell(name, getattr(row, name)) for name, _ in COLUMNS] for row in report.rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        f"device: {report.device} ({report.device_name}), dtype {report.dtype}"
        + (", tiny models" if report.tiny else ""),
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *(
            "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
            for cells in body
        ),
        f"memory: {report.memory_measure}; peak: {report.peak_measure} (per row, models "
        "loaded before it included)",
        f"baseline {_cell('peak_bytes', report.baseline_allocated)}, after unloading "
        f"everything {_cell('peak_bytes', report.final_allocated)}: "
        + ("back to baseline" if report.returned_to_baseline else "NOT back to baseline"),
        "GB/s: 10^9 bytes/s; the cold load next to reading its file from disk, the RAM-tier "
        "switch (parking the other model included) next to one page-locked host-to-device "
        "copy of as many bytes; n/a: not applicable off CUDA (no page-locked copies)",
        f"build {report.build_s:.1f}s, save {report.save_s:.1f}s, total {report.total_s:.1f}s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modelhost.gpucheck",
        description="Load, switch and generation timings and memory of full-size random-weight "
        "SD1.5 and SDXL on this machine's GPU, through the real model host. No download.",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU (smoke run)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda:0, or cpu)")
    parser.add_argument(
        "--models", default=",".join(FAMILIES), help="comma-separated: sd15,sdxl (default both)"
    )
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (20; tiny: 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the checkpoints go (a local disk; default: a new temporary folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints afterwards")
    args = parser.parse_args(argv)

    families = [f.strip() for f in args.models.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        parser.error(f"--models takes {', '.join(FAMILIES)}; got {args.models!r}")
    if args.tiny and args.device is None:
        args.device = "cpu"

    created = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="modelhost-gpucheck-")) if created else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[gpucheck] {message}", file=sys.stderr, flush=True)

    try:
        report = run_check(
            families, tiny=args.tiny, device_name=args.device, workdir=workdir,
            steps=args.steps, log=log,
        )  # fmt: skip
    except CheckError as e:
        raise SystemExit(f"gpucheck: {e}") from None
    finally:
        if created and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        gc.collect()
    print(render_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
        log(f"report written to {args.json}")
