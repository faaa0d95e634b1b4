"""Reading JSON out of a language model's free-text answer.

Models wrap JSON in prose or code fences, think aloud first (<think>...</think>), truncate it
at the token limit or write something that is not JSON at all. `extract_json` finds the
first JSON value the caller accepts, or raises MalformedAnswer with a reason precise enough
to be fed back to the model on a retry and kept in the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any


class MalformedAnswer(ValueError):
    """The answer cannot be used at all (the message is the reason)."""


def extract_json(raw: str, opener: str, accept: Callable[[Any], bool], what: str) -> Any:
    """The first JSON value starting at an `opener` ("[" or "{") that `accept` takes.

    `what` names the expected value in the reason ("JSON list of objects").
    """
    text = re.sub(r"<think>.*?</think>", "", raw, flags=re.S).strip()
    decoder = json.JSONDecoder()
    pos = text.find(opener)
    if pos < 0:
        raise MalformedAnswer(f"the answer holds no {what}" + (" (it is empty)" if not text else ""))
    outer_error: json.JSONDecodeError | None = None  # the error at the first opener explains best
    first = pos
    while pos >= 0:
        try:
            value, _ = decoder.raw_decode(text, pos)
            if accept(value):
                return value
        except json.JSONDecodeError as exc:
            if pos == first:
                outer_error = exc
        pos = text.find(opener, pos + 1)
    if outer_error is not None:
        if outer_error.pos >= len(text.rstrip("`").rstrip()) - 1 or "Unterminated" in outer_error.msg:
            raise MalformedAnswer(f"the {what} is cut off (truncated answer?)")
        raise MalformedAnswer(f"the answer is not valid JSON ({outer_error.msg} at character {outer_error.pos})")
    raise MalformedAnswer(f"the answer holds JSON but no {what}")
