"""Prefetch (engine/prefetch.py): hinted bases built into the RAM tier in the background,
taken by a later load as a RAM-tier switch; dropped when the hint stops naming them; never
at the cost of anything already in the tier."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.pipelines import Pipeline, build_pipeline
from modelhost.engine.types import LoadSource, LoadSpec, MemoryPolicy
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc
from tiny import image, size

WAIT_SECONDS = 120  # only a hang runs into it
ROOMY = MemoryPolicy(ram_cache_bytes=2**30)
MARGIN = 200_000  # bytes: more than the few buffers checkpoints do not store


def model(demo_dir: Path, name: str, key: str, dtype: str = "") -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / f"tiny-{name}.safetensors"),
        config_dir=str(demo_dir / f"tiny-{name}.config"),
        dtype=dtype,
    )


def copy(demo_dir: Path, tmp_path: Path, key: str) -> LoadSpec:
    """A copy of the tiny SD1.5 file: copies are bases of one size."""
    path = tmp_path / f"{key}.safetensors"
    shutil.copyfile(demo_dir / "tiny-sd15.safetensors", path)
    return LoadSpec(key=key, model_path=str(path), config_dir=str(demo_dir / "tiny-sd15.config"))


def counted(
    builds: list[str],
    started: threading.Event | None = None,
    gate: threading.Event | None = None,
) -> object:
    """build_pipeline that records each build; with a gate, says it started and waits."""

    def builder(path: Path, *args: object) -> Pipeline:
        builds.append(path.name)
        if started is not None and gate is not None:
            started.set()
            assert gate.wait(WAIT_SECONDS)
        return build_pipeline(path, *args)  # type: ignore[arg-type]

    return builder


def test_a_prefetched_base_loads_as_a_ram_tier_switch(demo_dir: Path) -> None:
    builds: list[str] = []
    host = ModelHost(Device("cpu"), policy=ROOMY, builder=counted(builds))  # type: ignore[arg-type]
    host.load(model(demo_dir, "sd15", "a"))
    assert host.prefetch([model(demo_dir, "sdxl", "b")]) == (["b"], [])
    assert host.wait_prefetched(WAIT_SECONDS)
    memory = host.memory()
    assert [m.key for m in memory.models] == ["a"]  # a prefetch is no loaded key
    assert memory.ram_tier_bytes >= size(demo_dir, "sdxl") - MARGIN

    loaded = host.load(model(demo_dir, "sdxl", "b"))
    assert (loaded.source, loaded.prefetched) == (LoadSource.RAM, True)
    assert builds == ["tiny-sd15.safetensors", "tiny-sdxl.safetensors"]  # built once
    assert loaded.bytes >= size(demo_dir, "sdxl") - MARGIN
    assert host.memory().ram_tier_bytes == 0
    assert image(host, "b")[:8] == b"\x89PNG\r\n\x1a\n"
    # Resident now: the next load of it is no prefetch.
    again = host.load(model(demo_dir, "sdxl", "b"))
    assert (again.source, again.prefetched) == (LoadSource.RESIDENT, False)


def test_a_prefetched_switch_fits_where_the_device_holds_one_pipeline(demo_dir: Path) -> None:
    # The device takes the larger pipeline alone: the switch evicts the active one for the
    # prefetched one, which counts once (unpark makes its room), not twice.
    cap = size(demo_dir, "sdxl") + MARGIN
    assert cap < size(demo_dir, "sdxl") + size(demo_dir, "sd15")
    host = ModelHost(Device("cpu"), policy=MemoryPolicy(cap_bytes=cap, ram_cache_bytes=2**30))
    host.load(model(demo_dir, "sd15", "a"))
    host.prefetch([model(demo_dir, "sdxl", "b")])
    assert host.wait_prefetched(WAIT_SECONDS)
    loaded = host.load(model(demo_dir, "sdxl", "b"))
    assert (loaded.source, loaded.prefetched) == (LoadSource.RAM, True)
    assert loaded.evicted == ("a",)
    assert [m.key for m in host.memory().models if not m.in_ram_tier] == ["b"]


def test_the_tier_keeps_room_for_a_hinted_base_over_one_no_hint_names(
    demo_dir: Path, tmp_path: Path
) -> None:
    # Three copies of one file: three bases of one size. Device and tier each hold one. a is
    # active; b and c are hinted, b built. The switch to b evicts a: parking it would fill
    # the tier and c (wanted next) could never be built, so a is dropped, c is built, and
    # the switch to c is a prefetched one too.
    a, b, c = (copy(demo_dir, tmp_path, key) for key in "abc")
    one = size(demo_dir, "sd15") + MARGIN
    host = ModelHost(Device("cpu"), policy=MemoryPolicy(cap_bytes=one, ram_cache_bytes=one))
    host.load(a)
    host.prefetch([b, c])
    assert host.wait_prefetched(WAIT_SECONDS)
    switched = host.load(b)
    assert (switched.source, switched.prefetched, switched.evicted_to_ram) == (
        LoadSource.RAM,
        True,
        (),
    )
    assert host.wait_prefetched(WAIT_SECONDS)
    again = host.load(c)
    assert (again.source, again.prefetched) == (LoadSource.RAM, True)


def test_the_room_kept_for_a_hinted_base_never_pushes_out_a_parked_one(
    demo_dir: Path, tmp_path: Path
) -> None:
    # The device holds one base, the tier two. a is active and b parked: a job on b is queued
    # further on than the hint reaches. c and d are hinted, c built. The switch to c evicts
    # a: the room kept for d comes out of a (dropped: no hint names it), not out of b.
    a, b, c, d = (copy(demo_dir, tmp_path, key) for key in "abcd")
    one = size(demo_dir, "sd15") + MARGIN
    host = ModelHost(Device("cpu"), policy=MemoryPolicy(cap_bytes=one, ram_cache_bytes=2 * one))
    host.load(b)
    assert host.load(a).evicted_to_ram == ("b",)
    host.prefetch([c, d])
    assert host.wait_prefetched(WAIT_SECONDS)
    switched = host.load(c)
    assert (switched.source, switched.prefetched, switched.evicted, switched.evicted_to_ram) == (
        LoadSource.RAM,
        True,
        ("a",),
        (),
    )
    assert [(m.key, m.tier) for m in host.memory().models] == [("b", "ram"), ("c", "device")]
    assert host.wait_prefetched(WAIT_SECONDS)
    built = host.load(d)
    assert (built.source, built.prefetched) == (LoadSource.RAM, True)
    taken = host.load(b)
    assert (taken.source, taken.prefetched) == (LoadSource.RAM, False)


def test_a_hint_that_no_longer_names_a_prefetch_drops_it(demo_dir: Path) -> None:
    host = ModelHost(Device("cpu"), policy=ROOMY)
    host.prefetch([model(demo_dir, "sdxl", "b")])
    assert host.wait_prefetched(WAIT_SECONDS)
    assert host.memory().ram_tier_bytes > 0
    assert host.prefetch([]) == ([], [])
    assert host.memory().ram_tier_bytes == 0
    loaded = host.load(model(demo_dir, "sdxl", "b"))
    assert (loaded.source, loaded.prefetched) == (LoadSource.DISK, False)


def test_a_prefetch_never_pushes_out_what_the_tier_holds(demo_dir: Path) -> None:
    builds: list[str] = []
    # Room for the parked sd15 alone: the sdxl prefetch does not fit beside it.
    room = size(demo_dir, "sd15") + MARGIN
    assert size(demo_dir, "sdxl") > MARGIN
    host = ModelHost(
        Device("cpu"),
        policy=MemoryPolicy(ram_cache_bytes=room),
        builder=counted(builds),  # type: ignore[arg-type]
    )
    host.load(model(demo_dir, "sd15", "c"))
    assert host.offload("c")[1]  # parked
    assert host.prefetch([model(demo_dir, "sdxl", "b")]) == (["b"], [])
    assert host.wait_prefetched(WAIT_SECONDS)
    assert builds == ["tiny-sd15.safetensors"]  # nothing built: no room
    assert [(m.key, m.tier) for m in host.memory().models] == [("c", "ram")]
    loaded = host.load(model(demo_dir, "sdxl", "b"))
    assert (loaded.source, loaded.prefetched) == (LoadSource.DISK, False)


def test_a_parked_base_never_pushes_out_a_wanted_prefetch(demo_dir: Path) -> None:
    # Room for one sd15 in the tier, held by the prefetch: evicting `a` cannot park it.
    host = ModelHost(
        Device("cpu"),
        policy=MemoryPolicy(ram_cache_bytes=size(demo_dir, "sd15") + MARGIN),
    )
    host.load(model(demo_dir, "sd15", "a"))
    host.prefetch([model(demo_dir, "sd15", "b", dtype="bfloat16")])
    assert host.wait_prefetched(WAIT_SECONDS)
    freed, parked = host.offload("a")
    assert freed > 0
    assert not parked
    assert host.resident_keys() == []
    loaded = host.load(model(demo_dir, "sd15", "b", dtype="bfloat16"))
    assert (loaded.source, loaded.prefetched) == (LoadSource.RAM, True)


def test_resident_keys_and_bad_entries_are_skipped(demo_dir: Path, tmp_path: Path) -> None:
    host = ModelHost(Device("cpu"), policy=ROOMY)
    host.load(model(demo_dir, "sd15", "a"))
    missing = LoadSpec(key="gone", model_path=str(tmp_path / "gone.safetensors"))
    wanted, skipped = host.prefetch(
        [model(demo_dir, "sd15", "a"), missing, model(demo_dir, "sdxl", "b")]
    )
    assert (wanted, skipped) == (["b"], ["a", "gone"])
    assert host.wait_prefetched(WAIT_SECONDS)  # no build left running into the next test


def test_without_a_ram_tier_nothing_is_built(demo_dir: Path) -> None:
    builds: list[str] = []
    host = ModelHost(Device("cpu"), builder=counted(builds))  # type: ignore[arg-type]
    host.prefetch([model(demo_dir, "sdxl", "b")])
    assert host.wait_prefetched(WAIT_SECONDS)
    assert builds == []


def gated_host() -> tuple[ModelHost, list[str], threading.Event, threading.Event]:
    """A host with a roomy tier whose builds are listed, and wait at `gate` once `started`."""
    builds: list[str] = []
    started, gate = threading.Event(), threading.Event()
    host = ModelHost(
        Device("cpu"),
        policy=ROOMY,
        builder=counted(builds, started, gate),  # type: ignore[arg-type]
    )
    return host, builds, started, gate


def test_a_load_of_the_base_being_built_takes_that_build(demo_dir: Path) -> None:
    host, builds, started, gate = gated_host()
    host.prefetch([model(demo_dir, "sdxl", "b")])
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The build has started (it waits at the gate) before the load asks for it.
        assert started.wait(WAIT_SECONDS)
        load = pool.submit(host.load, model(demo_dir, "sdxl", "b"))
        gate.set()
        loaded = load.result(timeout=WAIT_SECONDS)
    assert builds == ["tiny-sdxl.safetensors"]
    assert (loaded.source, loaded.prefetched) == (LoadSource.RAM, True)


async def test_prefetch_travels_over_grpc_and_the_load_says_prefetched(
    stub: pb_grpc.ModelHostStub, host: ModelHost, demo_dir: Path
) -> None:
    host.policy = ROOMY

    def request(key: str, name: str) -> pb.LoadModelRequest:
        return pb.LoadModelRequest(
            key=key,
            model_path=str(demo_dir / f"tiny-{name}.safetensors"),
            config_dir=str(demo_dir / f"tiny-{name}.config"),
        )

    reply = await stub.Prefetch(
        pb.PrefetchRequest(loads=[request("b", "sdxl"), pb.LoadModelRequest(key="no-path")])
    )
    assert (list(reply.wanted), list(reply.skipped)) == (["b"], ["no-path"])
    assert host.wait_prefetched(WAIT_SECONDS)
    loaded = await stub.LoadModel(request("b", "sdxl"))
    assert loaded.source == pb.LOAD_SOURCE_RAM
    assert loaded.prefetched


def test_a_base_a_load_is_building_is_not_built_again_by_a_prefetch(demo_dir: Path) -> None:
    # A job that starts on a mode no one holds is hinted too (it has not loaded yet): the hint
    # comes while its load builds the base.
    host, builds, started, gate = gated_host()
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(host.load, model(demo_dir, "sdxl", "b"))
        try:
            assert started.wait(WAIT_SECONDS)  # the load's build waits at the gate
            assert host.prefetch([model(demo_dir, "sdxl", "b")]) == (["b"], [])
            # Nothing for the builder to do while the load builds b (a second build of it
            # would wait at the gate, and this with it).
            assert host.wait_prefetched(WAIT_SECONDS)
        finally:
            gate.set()
        loaded = load.result(timeout=WAIT_SECONDS)
    assert builds == ["tiny-sdxl.safetensors"]
    assert (loaded.source, loaded.prefetched) == (LoadSource.DISK, False)
