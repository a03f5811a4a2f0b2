import logging

import pytest
from diffusers.utils import logging as diffusers_logging

from modelhost.logs import LOG_FORMAT, DropLibraryNoise, route_diffusers_logs


@pytest.fixture
def records():
    """Records reaching a root handler that carries the model host's filter."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(DropLibraryNoise())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield seen
    finally:
        root.removeHandler(handler)
        diffusers_logging.enable_default_handler()
        diffusers_logging.disable_propagation()


def test_diffusers_lines_reach_our_handler_at_their_level_without_the_float32_note(records):
    route_diffusers_logs()
    log = diffusers_logging.get_logger("diffusers.models.modeling_utils")
    log.warning("There are modules in UNet that should be kept in float32: ['x']. Casting ...")
    log.warning("a warning that matters")
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "a warning that matters")
    ]


def test_our_own_lines_pass_whatever_they_say(records):
    logging.getLogger("modelhost").warning("weights should be kept in float32 here")
    assert len(records) == 1
