"""The benchmark-only load delay (MODELHOST_BENCH_LOAD_DELAY_MS): parsed once, applied on the
device thread (a wrapper around the host's load) to loads that are not resident, and to nothing
else."""

import pytest

from modelhost.__main__ import bench_load_delay_seconds
from modelhost.bench_delay import DelayedLoads
from modelhost.engine.types import LoadResult, LoadSource, LoadSpec

SPEC = LoadSpec(key="a-000000000000", model_path="/models/a.safetensors")


class StubHost:
    """Answers every load with the source it is told."""

    def __init__(self, source: LoadSource) -> None:
        self.source = source

    def load(self, spec: LoadSpec) -> LoadResult:
        return LoadResult(
            key=spec.key,
            architecture="sd15",
            bytes=1,
            estimated_bytes=1,
            load_seconds=0.5,
            source=self.source,
            device="cpu",
        )


def test_env_parsing() -> None:
    assert bench_load_delay_seconds({}) == 0
    assert bench_load_delay_seconds({"MODELHOST_BENCH_LOAD_DELAY_MS": "0"}) == 0
    assert bench_load_delay_seconds({"MODELHOST_BENCH_LOAD_DELAY_MS": "1500"}) == 1.5
    with pytest.raises(SystemExit, match="MODELHOST_BENCH_LOAD_DELAY_MS"):
        bench_load_delay_seconds({"MODELHOST_BENCH_LOAD_DELAY_MS": "2s"})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (LoadSource.DISK, 0.52),
        (LoadSource.RAM, 0.52),
        (LoadSource.SHARED_BASE, 0.52),
        (LoadSource.RESIDENT, 0.5),
    ],
)
def test_delay_applies_to_loads_that_are_not_resident(source: LoadSource, expected: float) -> None:
    result = DelayedLoads(StubHost(source), delay_seconds=0.02).load(SPEC)
    assert result.source is source
    assert result.load_seconds == pytest.approx(expected)
