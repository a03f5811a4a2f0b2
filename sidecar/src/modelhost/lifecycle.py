"""The serving lifecycle: whether calls are taken (starting, serving, stopping), how
many are in flight, and the running generations' cancels, so that a stop can drain
the calls and then cancel what still runs. Event-loop state only."""

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator

from modelhost.errors import UnavailableError


class ServingLifecycle:
    def __init__(self) -> None:
        # The server registers the servicer before it starts (gRPC wants it so) and
        # sets this once plugins and the inventory are ready; calls before: UNAVAILABLE.
        self.ready = True
        # Shutdown is drained here rather than by grpc's own grace: a server stopping
        # with streams in flight can stall their writes (seen with grpcio 1.85), so the
        # server is only stopped once every call has ended.
        self.stopping = False
        self._calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._cancels: set[threading.Event] = set()

    def check_ready(self) -> None:
        if self.stopping:
            raise UnavailableError("the model host is shutting down")
        if not self.ready:
            raise UnavailableError("the model host is starting; retry when its health is SERVING")

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One call: refused unless serving, counted in flight until it ends."""
        self.check_ready()
        self._calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if self._calls == 0:
                self._idle.set()

    @contextlib.contextmanager
    def cancellable(self, cancels: Iterable[threading.Event]) -> Iterator[None]:
        """The running generations' cancels, set by cancel_running while the block runs."""
        events = set(cancels)
        self._cancels.update(events)
        try:
            yield
        finally:
            self._cancels.difference_update(events)

    def begin_shutdown(self) -> None:
        """From now on every new call is refused with UNAVAILABLE."""
        self.stopping = True

    async def drain(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the calls in flight to end; True if they did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def cancel_running(self) -> int:
        """Asks every running generation to stop at its next step; returns how many."""
        for cancel in self._cancels:
            cancel.set()
        return len(self._cancels)
