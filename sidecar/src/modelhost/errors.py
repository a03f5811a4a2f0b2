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


class PinnedModelsError(ModelHostError):
    """A load fits only if pinned models were evicted, which they never are."""

    def __init__(self, what: str, keys: list[str]) -> None:
        listed = ", ".join(keys)
        super().__init__(
            f"{what} fits only by evicting pinned model(s): {listed}; unpin or unload one of them"
        )
        self.keys = keys


class GenerationCancelledError(ModelHostError):
    def __init__(self) -> None:
        super().__init__("generation cancelled")


class UnavailableError(ModelHostError):
    """The model host cannot take this call now (still starting, or stopping)."""


class UnknownTaskError(ModelHostError):
    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown task '{name}' (registered: {listed})")
        self.name = name


class TaskError(ModelHostError):
    """Raised by a task on purpose: its message goes to the caller as it is. The task
    could not do its work in the present state (a model is not loaded, ...)."""


class TaskArgumentError(TaskError):
    """Raised by a task whose arguments are missing or wrong."""


class TaskResultError(ModelHostError):
    """A task returned something that cannot be sent back as JSON: a bug in the task."""


class TaskPluginError(ModelHostError):
    """A task plugin module named by the operator cannot be imported."""
