"""The progress hand-off from the device thread to the event loop: however the wake-ups are
coalesced, every step arrives, once, in order, and before the generation's result."""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from modelhost.engine.types import GeneratedImage, GenerateParams, Progress
from modelhost.relay import ProgressRelay
from modelhost.servicer import ModelHostServicer
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

STEPS = 40


async def test_a_slow_consumer_gets_every_item_in_order_in_few_batches() -> None:
    loop = asyncio.get_running_loop()
    relay: ProgressRelay[int] = ProgressRelay(loop)

    def work() -> str:
        for step in range(STEPS):
            relay.put(step)
        return "done"

    job = loop.run_in_executor(None, work)
    batches: list[list[int]] = []
    async for batch in relay.batches(job):
        if batch and not batches:
            # Slow: the consumer comes back only once every item has been put.
            await asyncio.wait({job})
        if batch:
            batches.append(batch)
    assert [item for batch in batches for item in batch] == list(range(STEPS))
    # The items put while the consumer was away came with one wake-up, not one each.
    assert len(batches) <= 2
    assert job.result() == "done"


async def test_a_watched_future_wakes_the_consumer_with_an_empty_batch() -> None:
    loop = asyncio.get_running_loop()
    relay: ProgressRelay[int] = ProgressRelay(loop)
    job: asyncio.Future[None] = loop.create_future()
    other: asyncio.Future[None] = loop.create_future()
    relay.watch(other)
    loop.call_soon(other.set_result, None)
    seen: list[list[int]] = []
    async for batch in relay.batches(job):
        seen.append(batch)
        job.set_result(None)
    assert seen == [[]]


class PuttingHost:
    """A host whose generation puts every step as fast as the device thread can, then
    says it is done: with the event loop held meanwhile, the steps pile up."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    def generate(
        self,
        params: GenerateParams,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> GeneratedImage:
        for step in range(1, params.steps + 1):
            on_progress(Progress(step, params.steps, step / 1000))
        self.finished.set()
        return GeneratedImage(
            png=b"png", seed=params.seed, width=8, height=8, superres_applied=False
        )


async def test_generate_sends_every_step_in_order_when_the_loop_falls_behind(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    host = PuttingHost()
    server = grpc.aio.server()
    servicer = ModelHostServicer(host, executor)  # type: ignore[arg-type]
    pb_grpc.add_ModelHostServicer_to_server(servicer, server)
    address = f"unix:{tmp_path}/relay.sock"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            call = pb_grpc.ModelHostStub(channel).Generate(
                pb.GenerateRequest(key="k", steps=STEPS, seed=7)
            )
            first = await call.read()
            # The loop (the servicer's and this client's) is held until the device thread
            # has put every step: the slowest consumer there is.
            assert host.finished.wait(timeout=60)
            events = [first]
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)
    finally:
        await server.stop(None)
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds == ["progress"] * STEPS + ["image"]
    assert [(e.progress.step, e.progress.total_steps) for e in events[:-1]] == [
        (step, STEPS) for step in range(1, STEPS + 1)
    ]
    assert events[-1].image.seed == 7
