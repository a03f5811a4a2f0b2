"""Domain errors of the model host. The servicer maps each to one gRPC status
code in a single table; nothing below the servicer knows about gRPC."""


class ModelHostError(Exception):
    """Base of every error the host reports to its caller on purpose."""


class ModelFileNotFoundError(ModelHostError):
    def __init__(self, path: str) -> None:
        super().__init__(f"model file not found: {path}")
        self.path = path


class InvalidModelError(ModelHostError):
    """The file exists but cannot be loaded: corrupt, unknown layout or a refused format."""


class InvalidRequestError(ModelHostError):
    """A request argument is out of range or inconsistent."""


class NotLoadedError(ModelHostError):
    def __init__(self, key: str) -> None:
        super().__init__(f"model '{key}' is not loaded")
        self.key = key


class OutOfMemoryError(ModelHostError):
    """The device has no room for the model even after evicting every idle one."""


class GenerationCancelledError(ModelHostError):
    def __init__(self) -> None:
        super().__init__("generation cancelled")
