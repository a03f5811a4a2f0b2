"""Batched generation: each member gets what it gets alone, with its own progress, cancel
and failure; through the engine and through the real gRPC surface, on the tiny models."""

import dataclasses
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import pytest

from imagecompare import assert_changed, assert_same_pixels
from modelhost import streams
from modelhost.engine import pipelines
from modelhost.engine.batch import BatchMember, Outcome, generate_batch
from modelhost.engine.host import ModelHost
from modelhost.engine.types import GeneratedImage, GenerateParams, LoadSpec, Progress
from modelhost.errors import GenerationCancelledError
from modelhost.v1 import modelhost_pb2 as pb
from modelhost.v1 import modelhost_pb2_grpc as pb_grpc

T = TypeVar("T")


class OnDevice(Protocol):
    def __call__(self, fn: Callable[..., T], *args: Any) -> T: ...


PROMPTS = ["a beautiful landscape", "a city at night", "a red apple"]


@pytest.fixture
def on_device(executor: ThreadPoolExecutor) -> OnDevice:
    """Runs device work on one worker thread, as the model host does. (On a busy machine torch
    on the main thread ran 40 times slower than on a worker, measured here.)"""

    def run(fn: Callable[..., T], *args: Any) -> T:
        return executor.submit(fn, *args).result()

    return run


def load_sd15(host: ModelHost, demo_dir: Path, key: str = "sd15") -> None:
    host.load(
        LoadSpec(
            key=key,
            model_path=str(demo_dir / "tiny-sd15.safetensors"),
            config_dir=str(demo_dir / "tiny-sd15.config"),
        )
    )


def params(prompt: str, seed: int, **extra: Any) -> GenerateParams:
    fields: dict[str, Any] = dict(
        key="sd15", prompt=prompt, negative_prompt="", width=64, height=64, steps=3,
        guidance_scale=5.0, seed=seed,
    )  # fmt: skip
    fields.update(extra)
    return GenerateParams(**fields)


class Member:
    """One member's inputs and what it was told."""

    def __init__(self, params: GenerateParams) -> None:
        self.params = params
        self.cancel = threading.Event()
        self.steps: list[int] = []
        self.on_step: Callable[[int], None] = lambda step: None

    def batch_member(self) -> BatchMember:
        def on_progress(progress: Progress) -> None:
            self.steps.append(progress.step)
            self.on_step(progress.step)

        return BatchMember(self.params, on_progress, self.cancel)


def one_per_prompt(**extra: Any) -> list[Member]:
    """A member per prompt, seeded 1, 2, 3."""
    return [Member(params(prompt, seed, **extra)) for seed, prompt in enumerate(PROMPTS, start=1)]


def alone(
    on_device: OnDevice, host: ModelHost, p: GenerateParams, steps: list[int] | None = None
) -> bytes:
    def on_progress(progress: Progress) -> None:
        if steps is not None:
            steps.append(progress.step)

    return on_device(host.generate, p, on_progress, threading.Event()).png


def png(outcome: Outcome) -> bytes:
    assert isinstance(outcome, GeneratedImage), f"expected an image, got {outcome!r}"
    return outcome.png


def test_each_member_gets_its_own_image_and_progress(
    host: ModelHost, demo_dir: Path, on_device: OnDevice
) -> None:
    on_device(load_sd15, host, demo_dir)
    members = one_per_prompt()
    members.append(Member(params(PROMPTS[0], 4)))  # same prompt, its own seed

    outcomes = on_device(generate_batch, host, [m.batch_member() for m in members])

    for member, outcome in zip(members, outcomes, strict=True):
        assert member.steps == [1, 2, 3]
        assert outcome.seed == member.params.seed  # type: ignore[union-attr]
        assert_same_pixels(
            png(outcome), alone(on_device, host, member.params), f"seed {member.params.seed}"
        )
    assert_changed(png(outcomes[0]), png(outcomes[3]), "the same prompt with another seed")


def test_negative_prompts_and_samplers_keep_each_member_alone_equal(
    host: ModelHost, demo_dir: Path, on_device: OnDevice
) -> None:
    on_device(load_sd15, host, demo_dir)
    variants = [
        params(PROMPTS[0], 5, negative_prompt="blurry", scheduler="euler_a"),
        params(PROMPTS[1], 6, negative_prompt="dark", scheduler="euler_a"),
        # Without a negative prompt: not in the call above.
        params(PROMPTS[2], 7, scheduler="euler_a"),
        # Noise from one seed per call: these run one after another, still alone-equal.
        params(PROMPTS[0], 8, scheduler="dpmpp_sde_karras", steps=2),
        params(PROMPTS[1], 9, scheduler="dpmpp_sde_karras", steps=2),
    ]
    members = [Member(p) for p in variants]

    outcomes = on_device(generate_batch, host, [m.batch_member() for m in members])

    for member, outcome in zip(members, outcomes, strict=True):
        # A second-order sampler reports each of its model calls: as many as alone.
        steps: list[int] = []
        assert_same_pixels(
            png(outcome), alone(on_device, host, member.params, steps), str(member.params)
        )
        assert member.steps == steps


def test_a_cancelled_member_ends_cancelled_and_the_others_run_on(
    host: ModelHost, demo_dir: Path, on_device: OnDevice
) -> None:
    on_device(load_sd15, host, demo_dir)
    members = one_per_prompt()
    members[1].on_step = lambda step: members[1].cancel.set() if step == 1 else None

    outcomes = on_device(generate_batch, host, [m.batch_member() for m in members])

    assert isinstance(outcomes[1], GenerationCancelledError)
    assert members[1].steps == [1]  # no progress once cancelled
    for i in (0, 2):
        assert members[i].steps == [1, 2, 3]
        assert_same_pixels(
            png(outcomes[i]), alone(on_device, host, members[i].params), f"member {i}"
        )


def test_cancelling_every_member_stops_the_call_early(
    host: ModelHost, demo_dir: Path, on_device: OnDevice
) -> None:
    on_device(load_sd15, host, demo_dir)
    members = one_per_prompt(steps=20)

    def cancel_all(step: int) -> None:
        if step == 2:
            for member in members:
                member.cancel.set()

    members[0].on_step = cancel_all

    outcomes = on_device(generate_batch, host, [m.batch_member() for m in members])

    assert all(isinstance(o, GenerationCancelledError) for o in outcomes)
    assert members[0].steps == [1, 2]
    # The device is free again, and the pipeline as it was: a new generation completes.
    assert alone(on_device, host, params(PROMPTS[0], 1))


def test_a_failing_member_fails_alone(
    host: ModelHost, demo_dir: Path, on_device: OnDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_device(load_sd15, host, demo_dir)
    run = pipelines._run

    def poisoned(pipe: Any, members: list[GenerateParams], *args: Any) -> Any:
        if any(m.prompt == "poison" for m in members):
            raise RuntimeError("the poisoned prompt breaks the pipeline")
        return run(pipe, members, *args)

    monkeypatch.setattr(pipelines, "_run", poisoned)
    members = one_per_prompt()
    members.insert(1, Member(params("poison", 9)))

    outcomes = on_device(generate_batch, host, [m.batch_member() for m in members])

    assert isinstance(outcomes[1], RuntimeError)
    assert "poisoned" in str(outcomes[1])
    for i in (0, 2, 3):
        # Progress restarts with the member's own retry: it ran alone to the end.
        assert members[i].steps[-3:] == [1, 2, 3]
        assert_same_pixels(
            png(outcomes[i]), alone(on_device, host, members[i].params), f"member {i}"
        )


# ------------------------------------------------------------- through gRPC

Stub = pb_grpc.ModelHostStub


def member_request(prompt: str, seed: int, key: str = "sd15") -> pb.GenerateRequest:
    return pb.GenerateRequest(
        key=key, prompt=prompt, width=64, height=64, steps=3, guidance_scale=5.0, seed=seed
    )


async def load_over_grpc(stub: Stub, demo_dir: Path) -> None:
    await stub.LoadModel(
        pb.LoadModelRequest(
            key="sd15",
            model_path=str(demo_dir / "tiny-sd15.safetensors"),
            config_dir=str(demo_dir / "tiny-sd15.config"),
        )
    )


async def generate_alone(stub: Stub, request: pb.GenerateRequest) -> bytes:
    events = [event async for event in stub.Generate(request)]
    return bytes(events[-1].image.png)


def by_member(events: list[pb.GenerateBatchEvent]) -> dict[int, list[str]]:
    kinds: dict[int, list[str]] = {}
    for event in events:
        kinds.setdefault(event.member, []).append(event.WhichOneof("event") or "")
    return kinds


async def test_generate_batch_answers_each_member_as_generate_would(
    stub: Stub, demo_dir: Path
) -> None:
    await load_over_grpc(stub, demo_dir)
    requests = [
        member_request(PROMPTS[0], 1),
        member_request(PROMPTS[1], 2, key="missing"),
        member_request(PROMPTS[2], 3),
    ]
    call = stub.GenerateBatch()
    await call.write(pb.GenerateBatchRequest(batch=pb.GenerateBatchMembers(members=requests)))
    await call.done_writing()
    events = [event async for event in call]

    assert by_member(events) == {
        0: ["progress"] * 3 + ["image"],
        1: ["error"],
        2: ["progress"] * 3 + ["image"],
    }
    [error] = [e.error for e in events if e.member == 1]
    assert (error.code, error.message) == ("FAILED_PRECONDITION", "model 'missing' is not loaded")
    images = {e.member: e.image for e in events if e.WhichOneof("event") == "image"}
    for i in (0, 2):
        assert (images[i].seed, images[i].width, images[i].height) == (i + 1, 64, 64)
        assert_same_pixels(images[i].png, await generate_alone(stub, requests[i]), f"member {i}")


# Only a hang runs into it (and the checks below then fail): the client's cancel is on its
# way while the member waits.
CANCEL_DEADLINE_SECONDS = 60


async def test_a_member_cancelled_over_the_wire_ends_at_once(
    stub: Stub, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await load_over_grpc(stub, demo_dir)

    def member_1_waits_for_its_cancel(
        host: ModelHost, members: Sequence[BatchMember]
    ) -> list[Outcome]:
        # Member 1's step waits until the client's cancel has come over the wire: otherwise
        # the batch's last steps can end first (the client reacts to a progress event the
        # loop relays late), and member 1 completes instead.
        held = members[1]

        def on_progress(progress: Progress) -> None:
            held.on_progress(progress)
            held.cancel.wait(CANCEL_DEADLINE_SECONDS)

        waiting = dataclasses.replace(held, on_progress=on_progress)
        return generate_batch(host, [members[0], waiting, *members[2:]])

    monkeypatch.setattr(streams, "generate_batch", member_1_waits_for_its_cancel)
    requests = [member_request(prompt, seed) for seed, prompt in enumerate(PROMPTS, start=1)]
    call = stub.GenerateBatch()
    await call.write(pb.GenerateBatchRequest(batch=pb.GenerateBatchMembers(members=requests)))
    events: list[pb.GenerateBatchEvent] = []
    async for event in call:
        events.append(event)
        if event.member == 1 and event.WhichOneof("event") == "progress":
            await call.write(pb.GenerateBatchRequest(cancel_member=1))
            await call.done_writing()

    kinds = by_member(events)
    assert kinds[1][-1] == "cancelled"
    assert kinds[1].count("cancelled") == 1
    assert "image" not in kinds[1]
    assert kinds[0] == kinds[2] == ["progress"] * 3 + ["image"]
    images = {e.member: e.image.png for e in events if e.WhichOneof("event") == "image"}
    for i in (0, 2):
        assert_same_pixels(images[i], await generate_alone(stub, requests[i]), f"member {i}")


@pytest.mark.parametrize(
    ("messages", "detail"),
    [
        ([pb.GenerateBatchRequest(cancel_member=0)], "first message must carry the members"),
        ([pb.GenerateBatchRequest(batch=pb.GenerateBatchMembers())], "batch.members"),
        (
            [
                pb.GenerateBatchRequest(
                    batch=pb.GenerateBatchMembers(members=[member_request(PROMPTS[0], 1)])
                ),
                pb.GenerateBatchRequest(cancel_member=5),
            ],
            "cancel_member: 5 is no member of this batch of 1",
        ),
    ],
)
async def test_a_malformed_batch_call_is_invalid_argument(
    stub: Stub, demo_dir: Path, messages: list[pb.GenerateBatchRequest], detail: str
) -> None:
    await load_over_grpc(stub, demo_dir)
    call = stub.GenerateBatch()
    for message in messages:
        await call.write(message)
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail in (caught.value.details() or "")
