"""Model-host engine figures on the tiny demo models, in one process (no gRPC, no gateway):

* switching, per family: what a request for another mode costs the engine (its load + a
  1-step 64x64 generation) when that mode is resident on another base, is a LoRA variant of
  the active base (both keys loaded: the load says "resident", the adapters are swapped when
  it generates), comes from disk, or from the RAM tier (parked there by `offload` under a
  policy with RAM_CACHE_BYTES room: on a CPU the tier is a separate budget in the same
  memory, so this is the engine's bookkeeping of a tier switch, with no copy to a device);
  the baseline is the same generation with no switch.
* progress streaming: a 20-step generation whose steps go through the servicer's relay
  (modelhost.relay: the hand-off to the event loop, which builds and serializes each
  GenerateEvent) against the same generation with a callback that does nothing.

    PYTHONPATH=sidecar/src HF_HUB_OFFLINE=1 \
        sidecar/.venv/bin/python bench/engine-bench.py DEMO_DIR OUT.json

CPU figures on random-weight tiny models: the engine's bookkeeping and the denoising loop's
fixed costs, nothing about GPU speed.
"""

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from diffusers.utils import logging as diffusers_logging

from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GenerateParams, LoadSpec, LoraSpec, MemoryPolicy, Progress
from modelhost.relay import ProgressRelay
from modelhost.v1 import modelhost_pb2 as pb

ROUNDS = int(os.environ.get("BENCH_ENGINE_ROUNDS", "5"))
# Each of the three parts (sd15 switching, sdxl switching, progress) stops starting rounds once
# its third of this is spent (at least one round runs): a shared machine can make them slow.
BUDGET_S = float(os.environ.get("BENCH_ENGINE_BUDGET_S", "600"))
FAMILIES = {
    "sd15": ("tiny-sd15.safetensors", "tiny-sd15.config", "tiny-sd15-lora.safetensors"),
    "sdxl": ("tiny-sdxl.safetensors", "tiny-sdxl.config", "tiny-sdxl-lora.safetensors"),
}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def params(key: str, steps: int = 1, seed: int = 0) -> GenerateParams:
    return GenerateParams(
        key=key,
        prompt="a beautiful landscape",
        negative_prompt="",
        width=64,
        height=64,
        steps=steps,
        guidance_scale=5.0,
        seed=seed,
    )


def no_progress(_event: Progress) -> None:
    return None


def generate(
    host: ModelHost,
    key: str,
    steps: int = 1,
    seed: int = 0,
    on_progress: Callable[[Progress], None] = no_progress,
) -> None:
    host.generate(params(key, steps, seed), on_progress, threading.Event())


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def family_switching(host: ModelHost, demo: Path, family: str) -> dict[str, object]:
    model, config, lora = FAMILIES[family]
    base = LoadSpec(
        key=f"{family}-base", model_path=str(demo / model), config_dir=str(demo / config)
    )
    variant = LoadSpec(
        key=f"{family}-lora",
        model_path=base.model_path,
        config_dir=base.config_dir,
        loras=(LoraSpec(path=str(demo / "loras" / lora), strength=0.8, adapter_name="bench"),),
    )
    other_model, other_config, _ = FAMILIES["sdxl" if family == "sd15" else "sd15"]
    other = LoadSpec(
        key="other", model_path=str(demo / other_model), config_dir=str(demo / other_config)
    )
    for spec in (base, variant, other):
        host.load(spec)
        generate(host, spec.key)  # warms every pipeline and adapter once
    names = ("no switch", "resident", "shared-base", "disk", "ram")
    samples: dict[str, list[float]] = {name: [] for name in names}
    sources: dict[str, set[str]] = {name: set() for name in names}

    def switch_to(spec: LoadSpec, name: str) -> None:
        def run() -> None:
            sources[name].add(host.load(spec).source.value)
            generate(host, spec.key)

        samples[name].append(timed(run))

    deadline = time.perf_counter() + BUDGET_S / 3
    for i in range(ROUNDS):
        if i > 0 and time.perf_counter() > deadline:
            break
        generate(host, base.key, seed=i)
        switch_to(base, "no switch")
        generate(host, other.key)  # the other family active: coming back is a resident switch
        switch_to(base, "resident")
        switch_to(variant, "shared-base")
        host.unload(base.key)
        host.unload(variant.key)
        switch_to(base, "disk")
        # Only this switch runs with a tier: the others keep the policy they were measured under.
        policy = host.policy
        host.policy = MemoryPolicy(ram_cache_bytes=2**34)
        try:
            freed, parked = host.offload(base.key)
            if not parked:
                raise RuntimeError(f"{base.key} was not parked in the RAM tier ({freed} bytes freed)")
            switch_to(base, "ram")
        finally:
            host.policy = policy
        host.load(variant)
    for spec in (base, variant, other):
        host.unload(spec.key)
    baseline = statistics.median(samples["no switch"])
    rows: dict[str, object] = {
        name: {
            "rounds": len(xs),
            "p50_ms": ms(statistics.median(xs)),
            "added_over_no_switch_ms": ms(statistics.median(xs) - baseline),
            "load_source": sorted(sources[name]),
        }
        for name, xs in samples.items()
    }
    return rows


def switching(host: ModelHost, demo: Path) -> dict[str, object]:
    return {family: family_switching(host, demo, family) for family in FAMILIES}


def progress(host: ModelHost, demo: Path, steps: int) -> dict[str, object]:
    model, config, _ = FAMILIES["sdxl"]
    spec = LoadSpec(key="progress", model_path=str(demo / model), config_dir=str(demo / config))
    host.load(spec)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="bench-event-loop", daemon=True)
    runner.start()
    relayed: list[bytes] = []

    async def consume(relay: ProgressRelay[Progress], job: asyncio.Future[None]) -> None:
        async for batch in relay.batches(job):
            for item in batch:
                message = pb.GenerateEvent(
                    progress=pb.GenerateProgress(
                        step=item.step,
                        total_steps=item.total_steps,
                        elapsed_seconds=item.elapsed_seconds,
                    )
                )
                relayed.append(message.SerializeToString())

    def with_events(seed: int) -> None:
        """The servicer's relay: the generation on this thread, its events on the loop."""
        relay: ProgressRelay[Progress] = ProgressRelay(loop)
        job: asyncio.Future[None] = asyncio.run_coroutine_threadsafe(_future(), loop).result()
        consumer = asyncio.run_coroutine_threadsafe(consume(relay, job), loop)
        try:
            generate(host, spec.key, steps, seed, relay.put)
        finally:
            loop.call_soon_threadsafe(job.set_result, None)
        consumer.result()

    try:
        generate(host, spec.key, steps)
        samples: dict[str, list[float]] = {"without": [], "with": []}
        deadline = time.perf_counter() + BUDGET_S / 3
        # Three times the rounds of the other parts, the two kinds in turn first: the difference
        # sought (a few percent) is within what a fixed order's warm-up and one round's noise add.
        for i in range(3 * ROUNDS):
            if i > 0 and time.perf_counter() > deadline:
                break
            kinds = ("without", "with") if i % 2 == 0 else ("with", "without")
            for kind in kinds:
                run = (
                    partial(with_events, i)
                    if kind == "with"
                    else partial(generate, host, spec.key, steps, i)
                )
                samples[kind].append(timed(run))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        host.unload(spec.key)
    without = statistics.median(samples["without"])
    with_events = statistics.median(samples["with"])
    return {
        "steps": steps,
        "rounds": len(samples["with"]),
        "events_relayed": len(relayed),
        "without_p50_ms": ms(without),
        "with_p50_ms": ms(with_events),
        "added_percent": round((with_events / without - 1) * 100, 2),
        "target_added_percent": 2,
    }


async def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def main() -> None:
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    demo, out = Path(sys.argv[1]), Path(sys.argv[2])
    host = ModelHost(Device("cpu"))
    result = {
        "switching": switching(host, demo),
        "progress": progress(host, demo, 20),
        "rounds": ROUNDS,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
