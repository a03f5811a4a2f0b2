"""Named Python tasks that run inside the model host, called through RunTask.

A task is a function of (args, context) registered under a name:

    from typing import Any

    from modelhost.tasks import TaskArgumentError, TaskContext, task

    @task("acme.count-models")
    def count_models(args: dict[str, Any], ctx: TaskContext) -> Any:
        if "prefix" not in args:
            raise TaskArgumentError("prefix is required")
        return sum(key.startswith(args["prefix"]) for key in ctx.host.resident_keys())

- `args` is the request's args_json, parsed (always a JSON object; empty = {}).
- The return value is sent back as JSON; it must be JSON-serialisable (no NaN).
- Tasks run on the device thread, one at a time, in order with loads and generations:
  a task may use the GPU and the resident pipelines (through `ctx.host`) without
  racing a generation. A long task delays the work queued behind it.
- Raise TaskArgumentError for bad arguments (INVALID_ARGUMENT) and TaskError when the
  task cannot do its work now (FAILED_PRECONDITION); the message reaches the caller.
  Any other exception is a bug: INTERNAL, the traceback only in the model host's log.

Plugins: the model host imports, at start, before it reports SERVING,
1. every entry point of the group `modelhost.tasks` of the installed packages, e.g. in
   the plugin's pyproject.toml:
       [project.entry-points."modelhost.tasks"]
       acme = "acme_tasks.tasks"
   (a failing entry point is logged and skipped: a broken package must not take the
   model host down), and
2. the modules listed in MODELHOST_TASK_MODULES (comma-separated import paths, found on
   PYTHONPATH); one that fails to import stops the start with the reason, since the
   operator asked for it by name.
Importing the module runs its @task decorators, which register the tasks.

Built in: `echo` (returns its args) and `memory-summary` (device and resident models).
"""

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from modelhost.engine.host import ModelHost
from modelhost.errors import (
    InvalidRequestError,
    TaskArgumentError,
    TaskError,
    TaskPluginError,
    TaskResultError,
    UnknownTaskError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "TASK_MODULES_ENV",
    "TaskArgumentError",
    "TaskContext",
    "TaskError",
    "TaskFunction",
    "TaskRegistry",
    "load_plugins",
    "task",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelhost.tasks"
TASK_MODULES_ENV = "MODELHOST_TASK_MODULES"


@dataclass(frozen=True)
class TaskContext:
    """What a task may use: the model host of this model host (resident models, memory,
    loads) and through it the device."""

    host: ModelHost


TaskFunction = Callable[[dict[str, Any], TaskContext], Any]


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, TaskFunction] = {}

    def register(self, name: str, function: TaskFunction) -> None:
        if not name or name != name.strip():
            raise ValueError(f"task name must be non-empty without outer spaces: {name!r}")
        existing = self._tasks.get(name)
        # The same definition again is its module imported a second time (reloaded).
        if existing is not None and _identity(existing) != _identity(function):
            raise ValueError(
                f"task '{name}' is already registered by {_qualified(existing)}; "
                f"{_qualified(function)} cannot take the name"
            )
        self._tasks[name] = function

    def task(self, name: str) -> Callable[[TaskFunction], TaskFunction]:
        def decorate(function: TaskFunction) -> TaskFunction:
            self.register(name, function)
            return function

        return decorate

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def run(self, name: str, args_json: str, context: TaskContext) -> str:
        """Runs the task on the calling thread and returns its result as JSON."""
        function = self._tasks.get(name)
        if function is None:
            raise UnknownTaskError(name, self.names())
        args = _parse_args(args_json)
        result = function(args, context)
        try:
            return json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TaskResultError(f"task '{name}' returned a value that is not JSON: {e}") from e


def _parse_args(args_json: str) -> dict[str, Any]:
    if not args_json.strip():
        return {}
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"args_json is not valid JSON: {e}") from e
    if not isinstance(args, dict):
        raise InvalidRequestError(f"args_json must be a JSON object, got {type(args).__name__}")
    return args


def _identity(function: TaskFunction) -> tuple[str, int]:
    code = getattr(function, "__code__", None)
    return _qualified(function), code.co_firstlineno if code is not None else id(function)


def _qualified(function: TaskFunction) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


# The registry the model host serves; @task registers here.
REGISTRY = TaskRegistry()


def task(name: str) -> Callable[[TaskFunction], TaskFunction]:
    """Registers the decorated function as the task `name` (see the module docs)."""
    return REGISTRY.task(name)


def load_plugins(environ: Mapping[str, str]) -> list[str]:
    """Imports the task plugins (entry points, then MODELHOST_TASK_MODULES); returns
    what was imported. Raises TaskPluginError for a listed module that fails."""
    loaded: list[str] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception:
            log.exception("task plugin entry point %s failed to load: skipped", entry_point.name)
            continue
        loaded.append(entry_point.value)
    for module in (m.strip() for m in environ.get(TASK_MODULES_ENV, "").split(",")):
        if not module:
            continue
        try:
            importlib.import_module(module)
        except Exception as e:
            raise TaskPluginError(
                f"{TASK_MODULES_ENV}: cannot import '{module}': {type(e).__name__}: {e}"
            ) from e
        loaded.append(module)
    if loaded:
        log.info("task plugins: %s; tasks: %s", ", ".join(loaded), ", ".join(REGISTRY.names()))
    return loaded


# Registers the built-in tasks; at the end, so that `task` exists when it runs.
from modelhost.tasks import builtin  # noqa: E402, F401
