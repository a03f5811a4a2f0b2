"""Schemathesis hooks for test/fuzz.e2e-spec.ts: keep the fuzzer's generations cheap on CPU.

The OpenAPI document states the server's real limits (sizes to 2048x2048, 150 steps); a fuzzer
that asks for them would spend minutes per image on CPU. Valid values of the costly fields are
mapped to cheap valid ones, so every request stays as valid (or as invalid) as it was drawn, and
the server's limits are not weakened.
"""

import re
from typing import Any

import schemathesis

# fullmatch, as JavaScript reads the pattern: Python's $ would also take a trailing newline.
_SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    """Every phase's requests pass here, the document's own examples too.

    The map_* hooks would see only the values Schemathesis draws, not the examples it replays.
    """
    body = case.body
    if not isinstance(body, dict):
        return
    steps = body.get("num_inference_steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 150:
        body["num_inference_steps"] = 1
    size = body.get("size")
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match and all(8 <= int(side) <= 2048 and int(side) % 8 == 0 for side in match.groups()):
        body["size"] = f"{min(int(match[1]), 32)}x{min(int(match[2]), 32)}"
