"""Parsing the span classifier's answer and aligning its phrases to the caption's tokens.

The LLM is asked for JSON: [{"text": <exact phrase from the caption>, "category": <one of
CVO ICON STYLE AFFECT META>}, ...]. Models wrap JSON in prose or code fences, truncate it,
invent categories or paraphrase; this module turns all of that into either spans whose text
is exactly caption[start:end] with their token indices, or precise reasons.
"""

from __future__ import annotations

import json
import re

from tamscope.schema import Category
from tamscope.textmatch import find_phrase

CATEGORIES = {c.value for c in Category}


class MalformedAnswer(ValueError):
    """The answer cannot be used at all (the message is the reason, fed back on retry)."""


def parse_span_answer(raw: str) -> list[dict]:
    """The list of {"text", "category"} items in a model's answer."""
    text = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("[")
    if start < 0:
        raise MalformedAnswer("the answer holds no JSON list")
    end = text.rfind("]")
    if end < start:
        raise MalformedAnswer("the JSON list is not closed (truncated answer?)")
    try:
        items = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(items, list):
        raise MalformedAnswer("the JSON is not a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise MalformedAnswer(f"item {i} is not an object with a \"text\" string")
        category = str(item.get("category", "")).strip().upper()
        if category not in CATEGORIES:
            raise MalformedAnswer(f"item {i} has category {item.get('category')!r}, not one of "
                                  f"{', '.join(sorted(CATEGORIES))}")
        out.append({"text": item["text"], "category": category})
    return out


def align_spans(caption: str, items: list[dict], token_offsets: list[tuple[int, int]]):
    """(spans, rejected, counts): spans sorted by position, each {text, start, end, category, tokens}.

    Rejected items: not in the caption (even after repair), overlapping an accepted span,
    or covering no token. counts: proposed, exact, repaired, rejected.
    """
    spans, rejected = [], []
    counts = {"proposed": len(items), "exact": 0, "repaired": 0, "rejected": 0}
    cursor = 0
    for item in items:
        hit = find_phrase(caption, item["text"], anchor=cursor)
        if hit is None:
            rejected.append({**item, "reason": "not in the caption"})
            continue
        start, end, how = hit
        if any(start < s["end"] and s["start"] < end for s in spans):
            rejected.append({**item, "reason": "overlaps another span"})
            continue
        tokens = [i for i, (a, b) in enumerate(token_offsets) if a < end and start < b and b > a]
        if token_offsets and not tokens:
            rejected.append({**item, "reason": "covers no token"})
            continue
        counts[how] += 1
        spans.append({"text": caption[start:end], "start": start, "end": end, "category": item["category"],
                      "tokens": tokens})
        cursor = end
    counts["rejected"] = len(rejected)
    spans.sort(key=lambda s: s["start"])
    return spans, rejected, counts
