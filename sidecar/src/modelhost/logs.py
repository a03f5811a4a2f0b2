"""The model host's log: one line format for every library, which the gateway reads each
line's level from (apps/gateway/src/model-host/model-host-process.service.ts), and the
third-party lines nobody can act on dropped where they are written."""

import logging

#: The gateway parses "<date> <time> <LEVEL> <logger>: <message>": keep the two in step.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: diffusers warns on every move of a model that keeps some modules in float32 (the tiny
#: demo models and SDXL's VAE both do) that casting with `to()` "can lead to inconsistent
#: results". The pipelines are built with `torch_dtype` as it asks; the line repeats per
#: load and buries the warnings that matter.
_NOISE = ("should be kept in float32",)


class DropLibraryNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("diffusers"):
            return True
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # warnings.warn() goes through logging too: in our format, at WARNING.
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(DropLibraryNoise())


def route_diffusers_logs() -> None:
    """diffusers writes through a handler of its own, without a level on the line; send its
    records through ours instead (the format above, the noise filter)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_default_handler()
    diffusers_logging.enable_propagation()
