"""Parsing the span classifier's answer and aligning its phrases to the caption's tokens.

The LLM is asked for JSON: [{"text": <exact phrase from the caption>, "category": <one of
CVO ICON STYLE AFFECT META>}, ...]. Models wrap JSON in prose or code fences, truncate it,
invent categories or paraphrase; this module turns all of that into either spans whose text
is exactly caption[start:end] with their token indices, or precise reasons.

- Unusable answers (no JSON, truncated, an item without text, a category outside the five)
  raise MalformedAnswer: the stage asks again with the reason.
- Usable answers are aligned item by item. A phrase is looked up exactly, else "repaired"
  (same letters and digits ignoring case, punctuation and spacing: "large bright red sun" for
  "large, bright red sun", "The S cream" for "The Scream"); anything else is a paraphrase and
  is rejected. Of several occurrences the first one after the previous accepted phrase that
  overlaps no accepted span wins (models list phrases in caption order), else the first free
  one anywhere. Rejected with a reason: not in the caption, no letters or digits, overlapping
  an accepted span (every occurrence), covering no token.
"""

from __future__ import annotations

from contract.schema import Category
from contract.textmatch import phrase_occurrences
from precompute.llmjson import MalformedAnswer, extract_json

CATEGORIES = {c.value for c in Category}

__all__ = ["MalformedAnswer", "align_spans", "parse_span_answer"]


def _list_of_objects(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def parse_span_answer(raw: str) -> list[dict]:
    """The list of {"text", "category"} items in a model's answer."""
    items = extract_json(raw, "[", _list_of_objects, "JSON list of objects")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item.get("text"), str):
            raise MalformedAnswer(f"item {i} has no \"text\" string")
        category = str(item.get("category", "")).strip().upper()
        if category not in CATEGORIES:
            raise MalformedAnswer(f"item {i} has category {item.get('category')!r}, not one of "
                                  f"{', '.join(sorted(CATEGORIES))}")
        out.append({"text": item["text"], "category": category})
    return out


def _overlaps(start: int, end: int, spans: list[dict]) -> bool:
    return any(start < s["end"] and s["start"] < end for s in spans)


def align_spans(caption: str, items: list[dict], token_offsets: list[tuple[int, int]]):
    """(spans, rejected, counts): spans sorted by position, each {text, start, end, category, tokens}.

    rejected: the items with a "reason". counts: proposed, exact, repaired, rejected.
    """
    spans, rejected = [], []
    counts = {"proposed": len(items), "exact": 0, "repaired": 0, "rejected": 0}
    cursor = 0
    for item in items:
        if not any(ch.isalnum() for ch in item["text"]):
            rejected.append({**item, "reason": "no letters or digits"})
            continue
        occurrences, how = phrase_occurrences(caption, item["text"])
        if not occurrences:
            rejected.append({**item, "reason": "not in the caption"})
            continue
        free = [(a, b) for a, b in occurrences if not _overlaps(a, b, spans)]
        if not free:
            rejected.append({**item, "reason": "overlaps another span"})
            continue
        start, end = next(((a, b) for a, b in free if a >= cursor), free[0])
        # an empty token (the first bytes of a split character) counts as the character it starts
        tokens = [i for i, (a, b) in enumerate(token_offsets) if a < end and start < max(b, a + 1)]
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
