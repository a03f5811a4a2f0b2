"""The compute device and what it says about its memory."""

import gc
import platform
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
        # Collect first: cached blocks can only go back to the driver once the
        # tensors that used them are unreachable.
        gc.collect()
        if self.is_cuda:
            torch.cuda.empty_cache()


def _cpu_model_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"
