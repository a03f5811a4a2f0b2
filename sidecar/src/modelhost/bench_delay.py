"""BENCHMARK ONLY (MODELHOST_BENCH_LOAD_DELAY_MS, bench/scheduler.mjs): a wrapper around the
host's load that makes every load that is not resident take longer, so that a switch
between the tiny demo models costs what a GPU load does. Never part of the real host."""

import dataclasses
import time
from typing import Protocol

from modelhost.engine.types import LoadResult, LoadSource, LoadSpec


class Loads(Protocol):
    def load(self, spec: LoadSpec) -> LoadResult: ...


class DelayedLoads:
    def __init__(self, host: Loads, delay_seconds: float) -> None:
        self.host = host
        self.delay_seconds = delay_seconds

    def load(self, spec: LoadSpec) -> LoadResult:
        """The host's load, then the delay for a load that is not resident: slept on the
        calling (device) thread, so it holds the device as a real load would."""
        result = self.host.load(spec)
        if self.delay_seconds <= 0 or result.source is LoadSource.RESIDENT:
            return result
        time.sleep(self.delay_seconds)
        return dataclasses.replace(result, load_seconds=result.load_seconds + self.delay_seconds)
