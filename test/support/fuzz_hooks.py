"""Schemathesis hooks for test/fuzz.e2e-spec.ts: keep the fuzzer's generations cheap on CPU.

The OpenAPI document states the server's real limits (sizes to 2048x2048, 1000 steps); a fuzzer
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
    # POST /generate's steps, and POST /v1/images/generations' (which also makes n images, 1 to 10).
    for field in ("num_inference_steps", "steps"):
        steps = body.get(field)
        if isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 1000:
            body[field] = 1
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 10:
        body["n"] = min(n, 2)
    size = body.get("size")
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match and all(8 <= int(side) <= 2048 and int(side) % 8 == 0 for side in match.groups()):
        body["size"] = f"{min(int(match[1]), 32)}x{min(int(match[2]), 32)}"
