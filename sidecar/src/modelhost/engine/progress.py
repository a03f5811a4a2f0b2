"""Log lines that show a long step is alive: a multi-GB checkpoint can take minutes to load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: How often a step still running says so.
STILL_RUNNING_INTERVAL_S = 10.0


@contextmanager
def logged_progress(
    log: logging.Logger, what: str, interval_s: float = STILL_RUNNING_INTERVAL_S
) -> Iterator[None]:
    """Logs `what` when it starts, "still <what>: N s" every `interval_s` while it runs, and
    how long it took.

    The reports come from a daemon thread that waits on an event, so the step itself is never
    interrupted and the thread ends as soon as the step does.
    """
    started = time.monotonic()
    done = threading.Event()

    def report() -> None:
        while not done.wait(interval_s):
            log.info("still %s: %.0f s", what, time.monotonic() - started)

    log.info("%s", what)
    reporter = threading.Thread(target=report, name="progress-log", daemon=True)
    reporter.start()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        done.set()
        reporter.join()
        log.info("%s: %s in %.1f s", what, outcome, time.monotonic() - started)
