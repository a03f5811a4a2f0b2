"""Hands progress from the device thread to the event loop, every item, in order.

Why not `loop.call_soon_threadsafe(queue.put_nowait, item)` per step: the woken loop thread
needs the GIL, which the denoising thread holds between its torch ops, so the loop waits
for it up to the interpreter's switch interval (5 ms) while every op's release and
re-take of the GIL wakes it for nothing. On a small CPU host that per-step hand-off cost
5-15 % of a 20-step generation, the loop's own work 0.3 % (docs/BENCHMARKS.md, "Progress
streaming").

So the device thread wakes the loop only when no wake-up is pending (the items put while
one is pending go with it), and after waking it, waits without the GIL until the
consumer has handled what it took: the loop then runs at once, on a core the device
thread leaves idle. That wait is bounded by the switch interval, after which the
interpreter would have forced the switch anyway.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncGenerator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ProgressRelay(Generic[T]):
    """Items put by one worker thread, delivered on the loop in batches (each batch every
    item put since the last, in the order put) until a job is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[T] = []
        # A wake-up is scheduled on the loop and the items have not been taken yet.
        self._wake_pending = False
        # Set when the consumer is done with what it took (or has gone): a worker that
        # woke the loop waits on it.
        self._caught_up = threading.Event()
        self._caught_up.set()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        """From the worker thread."""
        if self._add(item):
            self._loop.call_soon_threadsafe(self._wake)
            self._caught_up.wait(sys.getswitchinterval())

    def post(self, item: T) -> None:
        """From the loop (never waits)."""
        if self._add(item):
            self._wake()

    def _add(self, item: T) -> bool:
        """Appends the item; True when the loop must be woken for it."""
        with self._lock:
            if self._closed:
                return False
            self._items.append(item)
            if self._wake_pending:
                return False
            self._wake_pending = True
            self._caught_up.clear()
            return True

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Wakes the consumer when `future` is done, so that it can look at it."""
        future.add_done_callback(lambda _: self._wake())

    def _wake(self, *_: object) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self) -> list[T]:
        with self._lock:
            items, self._items = self._items, []
            self._wake_pending = False
            return items

    async def batches(self, job: asyncio.Future[Any]) -> AsyncGenerator[list[T], None]:
        """Every item put, in batches, until `job` is done and every item put before it
        ended has been delivered. A batch is empty when a wake-up found nothing new (a
        watched future is done). Items put after the consumer has gone are dropped."""
        self.watch(job)
        try:
            while True:
                # Everything taken before has been handled: a waiting worker may go on.
                self._caught_up.set()
                # Read before taking: the worker's last put happens before the job ends.
                ended = job.done()
                batch = self._take()
                if not batch:
                    if ended:
                        return
                    self._waiter = self._loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                    batch = self._take()
                yield batch
        finally:
            with self._lock:
                self._closed = True
                self._items.clear()
            self._caught_up.set()
