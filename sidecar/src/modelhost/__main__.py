"""Command line: `python -m modelhost serve|make-demo-models`."""

import argparse
import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from modelhost.engine.types import MemoryPolicy
from modelhost.logs import configure_logging


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


def _env_bytes(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise SystemExit(f"{name} must be a whole number of bytes, got '{raw}'")
    return int(raw)


def memory_policy_from_env(environ: Mapping[str, str]) -> MemoryPolicy:
    """MEMORY_CAP_BYTES, MEMORY_RESERVE_BYTES, RAM_CACHE_BYTES; all unset: no limits."""
    cap = _env_bytes(environ, "MEMORY_CAP_BYTES")
    if cap == 0:
        raise SystemExit("MEMORY_CAP_BYTES must be above 0 (unset it for no cap)")
    return MemoryPolicy(
        cap_bytes=cap,
        reserve_bytes=_env_bytes(environ, "MEMORY_RESERVE_BYTES") or 0,
        ram_cache_bytes=_env_bytes(environ, "RAM_CACHE_BYTES") or 0,
    )


def bench_load_delay_seconds(environ: Mapping[str, str]) -> float:
    """MODELHOST_BENCH_LOAD_DELAY_MS: BENCHMARK ONLY (bench/scheduler.mjs). Every load that is
    not already resident waits this long more, so that a switch between the tiny demo models
    costs what a GPU load does. Unset or 0: no delay."""
    raw = environ.get("MODELHOST_BENCH_LOAD_DELAY_MS", "").strip()
    if not raw:
        return 0.0
    if not raw.isdigit():
        raise SystemExit(f"MODELHOST_BENCH_LOAD_DELAY_MS must be a whole number of ms, got '{raw}'")
    return int(raw) / 1000


def model_roots(flags: list[Path], environ: Mapping[str, str]) -> tuple[Path, ...]:
    """--model-root folders, then MODEL_ROOTS (colon-separated); none: no inventory, and
    loads are not restricted until SetModelRoots."""
    from_env = [Path(p) for p in environ.get("MODEL_ROOTS", "").split(":") if p.strip()]
    roots: list[Path] = []
    for root in [*flags, *from_env]:
        if root not in roots:
            roots.append(root)
    return tuple(roots)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modelhost")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC model host")
    serve.add_argument("--listen", default="127.0.0.1:50051", help="host:port or unix:PATH")
    serve.add_argument(
        "--device", default=None, help="torch device (default: cuda:0 if present, else cpu)"
    )
    serve.add_argument(
        "--allow-pickle",
        action="store_true",
        default=_env_flag("ALLOW_PICKLE"),
        help="allow .ckpt/.pt/.bin checkpoints (loading a pickle can run arbitrary code)",
    )
    serve.add_argument(
        "--debug",
        action="store_true",
        default=_env_flag("MODELHOST_DEBUG"),
        help="put exception details in INTERNAL errors",
    )
    serve.add_argument(
        "--grace", type=float, default=30.0, help="seconds the running job gets at shutdown"
    )
    serve.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process dies"
    )
    serve.add_argument(
        "--model-root",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a folder of models (and LoRAs) that ListModels lists and watches; repeatable. "
        "Added to MODEL_ROOTS (colon-separated). With any root, loads of files that resolve "
        "outside every root are refused; with none, loads are not restricted (the gateway "
        "sets the roots of its modes file with SetModelRoots)",
    )
    serve.add_argument(
        "--watch-poll",
        action="store_true",
        default=_env_flag("MODEL_WATCH_POLL"),
        help="watch the model roots by polling (bind mounts, network file systems: where "
        "inotify events do not arrive); env MODEL_WATCH_POLL=1",
    )

    demo = commands.add_parser(
        "make-demo-models", help="write tiny random-weight models and a modes.yaml"
    )
    demo.add_argument("dir", type=Path)

    full_size = commands.add_parser(
        "make-full-size-sd15",
        help="write (once) a full-size random-weight SD1.5 single file (fp16, about 2 GB) into "
        "the cache folder and print its path",
    )
    full_size.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="default: MODELHOST_CACHE_DIR, else $XDG_CACHE_HOME/modelhost, else "
        "~/.cache/modelhost",
    )

    args = parser.parse_args(argv)
    configure_logging(logging.INFO)

    if args.command == "serve":
        from modelhost.server import ServeOptions, exit_with_parent
        from modelhost.server import serve as run_server

        policy = memory_policy_from_env(os.environ)
        if args.exit_with_parent:
            exit_with_parent()
        asyncio.run(
            run_server(
                ServeOptions(
                    listen=args.listen,
                    policy=policy,
                    allow_pickle=args.allow_pickle,
                    debug=args.debug,
                    device=args.device,
                    grace_seconds=args.grace,
                    model_roots=model_roots(args.model_root, os.environ),
                    watch_poll=args.watch_poll,
                    environ=dict(os.environ),
                    bench_load_delay_seconds=bench_load_delay_seconds(os.environ),
                    token=os.environ.get("MODEL_HOST_TOKEN", "").strip() or None,
                )
            )
        )
    elif args.command == "make-full-size-sd15":
        from modelhost.demo.full_size import full_size_sd15_checkpoint

        print(full_size_sd15_checkpoint(args.cache_dir))
    else:
        from modelhost.demo.factory import make_demo_models

        modes_file = make_demo_models(args.dir)
        print(f"demo models and {modes_file} written")


if __name__ == "__main__":
    main()
