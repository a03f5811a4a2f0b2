"""The built-in tasks; also the example to copy for a plugin."""

from typing import Any

from modelhost.tasks import TaskArgumentError, TaskContext, task


@task("echo")
def echo(args: dict[str, Any], ctx: TaskContext) -> Any:
    """Returns its arguments: checks the RunTask path end to end."""
    return args


@task("memory-summary")
def memory_summary(args: dict[str, Any], ctx: TaskContext) -> Any:
    """The device and the resident models, in a form a script can print. Runs on the
    device thread, so it sees the state between two device operations, never half of one.
    `{"keys": ["a", ...]}` limits the model list to those keys."""
    wanted = args.get("keys")
    if wanted is not None and not (
        isinstance(wanted, list) and all(isinstance(k, str) for k in wanted)
    ):
        raise TaskArgumentError("keys must be a list of model keys (strings)")
    snapshot = ctx.host.memory()
    return {
        "device": snapshot.device,
        "device_name": snapshot.device_name,
        "total_bytes": snapshot.total_bytes,
        "used_bytes": snapshot.used_bytes,
        "available_bytes": snapshot.available_bytes,
        "models": [
            {
                "key": m.key,
                "architecture": m.architecture,
                "bytes": m.bytes,
                "tier": m.tier,
                "in_ram_tier": m.in_ram_tier,
                "stale": m.stale,
            }
            for m in snapshot.models
            if wanted is None or m.key in wanted
        ],
    }
