"""RunTask: the task registry, plugins, error codes, and where tasks run."""

import json
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import grpc
import pytest

import modelhost.tasks as tasks_module
from modelhost.engine.host import ModelHost
from modelhost.errors import TaskPluginError
from modelhost.servicer import ModelHostServicer
from modelhost.tasks import (
    REGISTRY,
    TaskArgumentError,
    TaskContext,
    TaskError,
    TaskRegistry,
    load_plugins,
)
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

Stub = pb_grpc.ModelHostStub


async def run(stub: Stub, name: str, args: object = None, raw: str | None = None) -> Any:
    args_json = raw if raw is not None else ("" if args is None else json.dumps(args))
    reply = await stub.RunTask(pb.RunTaskRequest(name=name, args_json=args_json))
    return json.loads(reply.result_json)


async def code_of(stub: Stub, name: str, raw: str = "") -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RunTask(pb.RunTaskRequest(name=name, args_json=raw))
    return caught.value.code(), caught.value.details() or ""


async def test_echo_returns_its_arguments(stub: Stub) -> None:
    assert await run(stub, "echo", {"a": [1, 2.5, "x"], "b": None}) == {
        "a": [1, 2.5, "x"],
        "b": None,
    }
    assert await run(stub, "echo") == {}


async def test_memory_summary_sees_the_resident_models(stub: Stub, demo_dir: Path) -> None:
    await stub.LoadModel(
        pb.LoadModelRequest(
            key="sd15",
            model_path=str(demo_dir / "tiny-sd15.safetensors"),
            config_dir=str(demo_dir / "tiny-sd15.config"),
        )
    )
    summary = await run(stub, "memory-summary")
    assert summary["device"] == "cpu"
    assert [(m["key"], m["architecture"], m["stale"]) for m in summary["models"]] == [
        ("sd15", "sd15", False)
    ]
    assert summary["models"][0]["bytes"] > 0
    assert (await run(stub, "memory-summary", {"keys": ["other"]}))["models"] == []
    code, details = await code_of(stub, "memory-summary", '{"keys": "sd15"}')
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "keys must be a list" in details


async def test_unknown_task_is_not_found_and_names_the_known_ones(stub: Stub) -> None:
    code, details = await code_of(stub, "no-such-task")
    assert code == grpc.StatusCode.NOT_FOUND
    assert "no-such-task" in details and "echo" in details


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
async def test_arguments_that_are_not_a_json_object_are_invalid(stub: Stub, raw: str) -> None:
    code, details = await code_of(stub, "echo", raw)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "args_json" in details


# ----------------------------------------------------- failing tasks, own registry


def _failing_registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task("bad-args")
    def bad_args(args: dict[str, Any], ctx: TaskContext) -> Any:
        raise TaskArgumentError("size must be a positive number")

    @registry.task("refuses")
    def refuses(args: dict[str, Any], ctx: TaskContext) -> Any:
        raise TaskError("model 'x' must be loaded first")

    @registry.task("crashes")
    def crashes(args: dict[str, Any], ctx: TaskContext) -> Any:
        raise RuntimeError("secret internal detail")

    @registry.task("not-json")
    def not_json(args: dict[str, Any], ctx: TaskContext) -> Any:
        return {"value": float("nan")}

    @registry.task("where")
    def where(args: dict[str, Any], ctx: TaskContext) -> Any:
        return {"thread": threading.get_ident(), "keys": ctx.host.resident_keys()}

    return registry


@pytest.fixture
async def task_stub(
    host: ModelHost, executor: ThreadPoolExecutor, tmp_path: Path
) -> AsyncIterator[Stub]:
    server = grpc.aio.server()
    servicer = ModelHostServicer(host, executor, tasks=_failing_registry())
    pb_grpc.add_ModelHostServicer_to_server(servicer, server)
    address = f"unix:{tmp_path}/tasks.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield Stub(channel)
    await server.stop(None)


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("bad-args", grpc.StatusCode.INVALID_ARGUMENT, "size must be a positive number"),
        ("refuses", grpc.StatusCode.FAILED_PRECONDITION, "model 'x' must be loaded first"),
        ("crashes", grpc.StatusCode.INTERNAL, "internal error: RuntimeError"),
        ("not-json", grpc.StatusCode.INTERNAL, "returned a value that is not JSON"),
    ],
)
async def test_task_failures_map_to_their_codes(
    task_stub: Stub, name: str, code: grpc.StatusCode, message: str
) -> None:
    got_code, details = await code_of(task_stub, name)
    assert got_code == code
    assert message in details
    assert "Traceback" not in details and "secret internal detail" not in details


async def test_tasks_run_on_the_device_thread(
    task_stub: Stub, executor: ThreadPoolExecutor
) -> None:
    device_thread = executor.submit(threading.get_ident).result()
    result = await run(task_stub, "where")
    assert result == {"thread": device_thread, "keys": []}
    assert device_thread != threading.get_ident()


def test_a_name_cannot_be_taken_twice() -> None:
    registry = TaskRegistry()
    registry.register("one", lambda args, ctx: 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("one", lambda args, ctx: 2)
    with pytest.raises(ValueError, match="non-empty"):
        registry.register(" ", lambda args, ctx: 3)


# ------------------------------------------------------------------------ plugins

PLUGIN_SOURCE = """
from modelhost.tasks import task

@task("{name}")
def double(args, ctx):
    return args["n"] * 2
"""


def write_plugin(folder: Path, module: str, task_name: str) -> None:
    (folder / f"{module}.py").write_text(PLUGIN_SOURCE.format(name=task_name))


def test_plugins_from_the_environment_and_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    write_plugin(tmp_path, "mh_env_plugin", "test.env-double")
    write_plugin(tmp_path, "mh_ep_plugin", "test.ep-double")
    (tmp_path / "mh_broken_plugin.py").write_text("raise ImportError('broken on purpose')\n")
    group = tasks_module.ENTRY_POINT_GROUP
    found = [
        EntryPoint(name="good", value="mh_ep_plugin", group=group),
        EntryPoint(name="broken", value="mh_broken_plugin", group=group),
    ]
    monkeypatch.setattr(tasks_module, "entry_points", lambda group: found)
    loaded = load_plugins({"MODELHOST_TASK_MODULES": " mh_env_plugin , "})
    # The broken entry point is skipped, not fatal; the others are imported.
    assert loaded == ["mh_ep_plugin", "mh_env_plugin"]
    context = TaskContext(host=ModelHost.__new__(ModelHost))
    assert REGISTRY.run("test.env-double", '{"n": 21}', context) == "42"
    assert REGISTRY.run("test.ep-double", '{"n": 2}', context) == "4"
    for module in ("mh_env_plugin", "mh_ep_plugin", "mh_broken_plugin"):
        sys.modules.pop(module, None)


def test_a_listed_module_that_fails_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_module, "entry_points", lambda group: [])
    with pytest.raises(TaskPluginError, match="cannot import 'mh_no_such_module'"):
        load_plugins({"MODELHOST_TASK_MODULES": "mh_no_such_module"})
