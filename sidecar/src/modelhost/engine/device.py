"""The compute device and what it says about its memory."""

import gc
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch


@dataclass(frozen=True)
class DeviceMemory:
    total_bytes: int
    free_bytes: int


class Device:
    """One torch device. CUDA figures come from the driver and the caching
    allocator; on CPU the same questions are answered from system memory."""

    def __init__(self, name: str | None = None) -> None:
        self.torch_device = torch.device(name or ("cuda:0" if torch.cuda.is_available() else "cpu"))
        self.is_cuda = self.torch_device.type == "cuda"

    @property
    def label(self) -> str:
        return str(self.torch_device)

    @property
    def display_name(self) -> str:
        if self.is_cuda:
            return torch.cuda.get_device_name(self.torch_device)
        return _cpu_model_name()

    def default_dtype(self) -> torch.dtype:
        return torch.float16 if self.is_cuda else torch.float32

    def memory(self) -> DeviceMemory:
        if self.is_cuda:
            free, total = torch.cuda.mem_get_info(self.torch_device)
            return DeviceMemory(total_bytes=total, free_bytes=free)
        vm = psutil.virtual_memory()
        return DeviceMemory(total_bytes=vm.total, free_bytes=vm.available)

    def allocated_bytes(self) -> int:
        """Bytes held by live tensors; only meaningful on CUDA."""
        if self.is_cuda:
            return torch.cuda.memory_allocated(self.torch_device)
        return 0

    def release_cached_memory(self) -> None:
        # On CUDA, collect first: cached blocks can only go back to the driver once the
        # tensors that used them are unreachable. On the CPU there is no cache to hand
        # back: a dropped pipeline's memory returns with its last reference, and the
        # collector finds any cycle in its own time (a full collection here cost a
        # RAM-tier switch 0.4 s of its 0.45 s on the tiny models).
        if self.is_cuda:
            gc.collect()
            torch.cuda.empty_cache()

    @property
    def pins_host_memory(self) -> bool:
        """Whether weights parked in system memory go to page-locked pages: only a CUDA
        device copies from those asynchronously and at full bus speed."""
        return self.is_cuda

    def to_host(self, modules: Iterable[torch.nn.Module]) -> None:
        """Moves every weight of the modules to system memory (the RAM tier)."""
        _move_tensors(modules, self._host_copy)
        if self.is_cuda:
            # The copies above were queued; the host pages are complete only after this.
            torch.cuda.synchronize(self.torch_device)

    def to_device(self, modules: Iterable[torch.nn.Module]) -> None:
        """Moves every weight of the modules back to this device."""
        _move_tensors(modules, self._device_copy)
        if self.is_cuda:
            # Non-blocking copies from pinned pages: done before anything uses them.
            torch.cuda.synchronize(self.torch_device)

    def _host_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.pins_host_memory:
            return tensor.to("cpu")
        if tensor.device.type == "cpu" and tensor.is_pinned():
            return tensor
        # empty_like keeps the strides, so the copy is one contiguous transfer per tensor.
        host = torch.empty_like(tensor, device="cpu", pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        return host

    def _device_copy(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.torch_device, non_blocking=self.pins_host_memory)


def _move_tensors(
    modules: Iterable[torch.nn.Module], copy: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    """Replaces the data of each parameter and buffer in place, so that every holder of the
    module (a pipeline, its hooks) sees the new place; a tensor shared by several modules
    is copied once."""
    seen: set[int] = set()
    with torch.no_grad():
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                tensor.data = copy(tensor.data)


def _cpu_model_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"
