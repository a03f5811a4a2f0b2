"""Generations as streams of events: a generation (or a batch) runs on the device thread
while its progress is relayed to the event loop, and a client that goes away, or cancels
a batch member, stops it at the next denoising step. Domain events only: servicer.py
converts them to messages."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from modelhost.engine.batch import BatchMember, Outcome, generate_batch
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GeneratedImage, GenerateParams, Progress
from modelhost.errors import GenerationCancelledError, InvalidRequestError
from modelhost.lifecycle import ServingLifecycle
from modelhost.relay import ProgressRelay

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")

# A batch member's event: its progress, or how it ended (an image, or the error it failed
# with; GenerationCancelledError when cancelled).
MemberEvent = tuple[int, Progress | Outcome]


class GenerationStreams:
    def __init__(
        self, host: ModelHost, device_executor: Executor, lifecycle: ServingLifecycle
    ) -> None:
        self.host = host
        # One thread owns the device: loads, generations and tasks never run on the event
        # loop, and run one at a time in the order they came.
        self.device_executor = device_executor
        self.lifecycle = lifecycle

    async def on_device(self, fn: Callable[..., Reply], *args: Any) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(self.device_executor, fn, *args)

    async def generate(self, params: GenerateParams) -> AsyncIterator[Progress | GeneratedImage]:
        """Runs the generation on the device thread and relays its progress.

        When the client goes away the call's task is cancelled here; the cancel
        event then stops the denoising loop at the next step boundary."""
        relay: ProgressRelay[Progress] = ProgressRelay(asyncio.get_running_loop())
        cancel = threading.Event()
        with self.lifecycle.cancellable([cancel]):
            job = asyncio.ensure_future(
                self.on_device(self.host.generate, params, relay.put, cancel)
            )
            try:
                async with contextlib.aclosing(relay.batches(job)) as batches:
                    async for batch in batches:
                        for event in batch:
                            yield event
                image: GeneratedImage = job.result()
                yield image
            except BaseException:
                cancel.set()
                # Nobody awaits the device job any more; its outcome (usually the
                # cancellation itself) is expected and must not be reported as lost.
                job.add_done_callback(_discard_outcome)
                raise

    async def generate_batch(
        self, members: list[GenerateParams], member_cancels: AsyncIterator[int]
    ) -> AsyncIterator[MemberEvent]:
        """Runs the batch on the device thread; relays each member's progress and outcome,
        and the client's member cancels (`member_cancels`, until the client closes its
        side), which end that member at once. Each member ends with one outcome."""
        if not members:
            raise InvalidRequestError("batch.members: at least one member is required")
        # (member, progress) from the device thread; (member, None) for a client's cancel.
        relay: ProgressRelay[tuple[int, Progress | None]] = ProgressRelay(
            asyncio.get_running_loop()
        )
        cancels = [threading.Event() for _ in members]
        ended = [False] * len(cancels)

        def on_progress(member: int) -> Callable[[Progress], None]:
            return lambda event: relay.put((member, event))

        batch = [
            BatchMember(params, on_progress(i), cancels[i]) for i, params in enumerate(members)
        ]
        with self.lifecycle.cancellable(cancels):
            job = asyncio.ensure_future(self.on_device(generate_batch, self.host, batch))
            reader = asyncio.ensure_future(_read_cancels(member_cancels, cancels, relay))
            relay.watch(reader)
            try:
                async with contextlib.aclosing(relay.batches(job)) as relayed:
                    async for events in relayed:
                        if (
                            reader.done()
                            and not reader.cancelled()
                            and reader.exception() is not None
                        ):
                            reader.result()  # raises the client's bad cancel
                        for member, progress in events:
                            if ended[member]:
                                continue
                            if progress is None:
                                ended[member] = True
                                yield member, GenerationCancelledError()
                            else:
                                yield member, progress
                for member, outcome in enumerate(job.result()):
                    if not ended[member]:
                        yield member, outcome
            except BaseException:
                for cancel in cancels:
                    cancel.set()
                job.add_done_callback(_discard_outcome)
                raise
            finally:
                reader.cancel()


async def _read_cancels(
    member_cancels: AsyncIterator[int],
    cancels: list[threading.Event],
    relay: ProgressRelay[tuple[int, Progress | None]],
) -> None:
    """Applies the client's member cancels until it closes its side of the call."""
    async for member in member_cancels:
        if member >= len(cancels):
            raise InvalidRequestError(
                f"cancel_member: {member} is no member of this batch of {len(cancels)}"
            )
        if not cancels[member].is_set():
            cancels[member].set()
            relay.post((member, None))


def _discard_outcome(job: asyncio.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        log.debug("abandoned generation ended with %r", job.exception())
