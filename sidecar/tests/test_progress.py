"""The progress lines of a long step: a start line, "still ..." lines, and an end line."""

from __future__ import annotations

import logging
import threading

import pytest

from modelhost.engine.progress import logged_progress

LOG = logging.getLogger("test.progress")


def test_reports_while_running_and_when_done(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.progress")
    two_reports = threading.Event()

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if sum(r.getMessage().startswith("still loading x") for r in caplog.records) >= 2:
                two_reports.set()

    counter = Counter()
    LOG.addHandler(counter)
    try:
        with logged_progress(LOG, "loading x", interval_s=0.01):
            # The step lasts until the reporter has spoken twice: no sleep stands in for it.
            assert two_reports.wait(30)
    finally:
        LOG.removeHandler(counter)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "loading x"
    assert all(m.startswith("still loading x: ") and m.endswith(" s") for m in messages[1:-1])
    assert len(messages) >= 4
    assert messages[-1].startswith("loading x: done in ")


def test_says_failed_when_the_step_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.progress")
    with pytest.raises(RuntimeError), logged_progress(LOG, "loading y", interval_s=60):
        raise RuntimeError("boom")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "loading y"
    assert messages[-1].startswith("loading y: failed in ")
    assert not any(m.startswith("still") for m in messages)
