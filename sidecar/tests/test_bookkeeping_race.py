"""Memory queries from the event loop while another thread loads and unloads LoRA keys
on one base: every snapshot is whole, none fails."""

import asyncio
import threading
from pathlib import Path

from modelhost.engine.host import ModelHost
from modelhost.engine.types import LoadSpec, LoraSpec
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

ROUNDS = 100  # 200 loads and unloads, against thousands of queries
# Between queries: leaves the churn thread the GIL most of the time, so the rounds stay
# quick; the queries still land in every phase of a load and an unload.
PACE_SECONDS = 0.001
# How long a loaded LoRA key waits for a query to see it: only a hang runs into it.
SEEN_DEADLINE_SECONDS = 120


def spec(demo_dir: Path, key: str, *loras: LoraSpec) -> LoadSpec:
    return LoadSpec(
        key=key,
        model_path=str(demo_dir / "tiny-sd15.safetensors"),
        config_dir=str(demo_dir / "tiny-sd15.config"),
        loras=loras,
    )


async def test_get_memory_during_lora_churn_on_one_base_never_fails(
    stub: pb_grpc.ModelHostStub, host: ModelHost, demo_dir: Path
) -> None:
    lora = LoraSpec(str(demo_dir / "loras" / "tiny-sd15-lora.safetensors"), 0.8)
    host.load(spec(demo_dir, "plain"))
    done = threading.Event()
    seen_loaded = threading.Event()
    churn_errors: list[BaseException] = []

    def churn() -> None:
        # Load and unload a LoRA key on the shared base, the way mode switches do. Each load
        # stays until a query has seen it, so both states are observed whatever the timing.
        try:
            for round_ in range(ROUNDS):
                seen_loaded.clear()
                host.load(spec(demo_dir, "detail", lora))
                if not seen_loaded.wait(SEEN_DEADLINE_SECONDS):
                    raise AssertionError(f"round {round_}: no query saw the LoRA key loaded")
                host.unload("detail")
        except BaseException as error:
            churn_errors.append(error)
        finally:
            done.set()

    worker = threading.Thread(target=churn, name="churn")
    worker.start()
    queries = 0
    query_errors: list[BaseException] = []
    seen: set[tuple[str, ...]] = set()
    try:
        while not done.is_set():
            try:
                # The servicer's path (the event loop) and the host's own, alternately.
                if queries % 2:
                    stats = await stub.GetMemory(pb.GetMemoryRequest())
                    keys = tuple(sorted(m.key for m in stats.models))
                else:
                    keys = tuple(sorted(m.key for m in host.memory().models))
                seen.add(keys)
                if "detail" in keys:
                    seen_loaded.set()
            except Exception as error:
                query_errors.append(error)
            queries += 1
            await asyncio.sleep(PACE_SECONDS)
    finally:
        worker.join(timeout=600)
    assert not worker.is_alive(), "the churn thread never ended"
    assert churn_errors == []
    assert query_errors == [], (
        f"{len(query_errors)} of {queries} queries failed: {query_errors[0]!r}"
    )
    # Every snapshot is one of the two whole states; the churn thread saw to it that both came.
    assert seen <= {("plain",), ("detail", "plain")}
    assert seen == {("plain",), ("detail", "plain")}
    assert queries > ROUNDS
