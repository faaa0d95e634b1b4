"""Parsing the span classifier's answer and aligning its phrases to the caption's tokens.

The LLM is asked for JSON: [{"text": <exact phrase from the caption>, "category": <one of
CVO ICON STYLE AFFECT META>}, ...]. Models wrap JSON in prose or code fences, truncate it,
invent categories or paraphrase; this module turns all of that into either spans whose text
is exactly caption[start:end] with their token indices, or precise reasons.

- Unusable answers (no JSON, truncated, an item without text, a category outside the five)
  raise MalformedAnswer: the stage asks again with the reason.
- Usable answers are aligned by contract.phrasealign (the aligner the importer uses too): each
  phrase exactly, else "repaired" (same letters and digits ignoring case, punctuation and
  spacing: "large bright red sun" for "large, bright red sun", "The S cream" for "The Scream"),
  else "approximate" (a reworded phrase whose words are at least 80% alike: "Virgin Mary and
  Christ Child" for "Virgin Mary and the Christ Child"), never cutting a word. Occurrences follow
  the order of the list (models list phrases in caption order; a repeated phrase takes the next
  occurrence) and spans never overlap. Rejected with a reason: not in the caption, no letters or
  digits, overlapping an accepted span (every occurrence), covering no token.
"""

from __future__ import annotations

from contract.phrasealign import align_phrases
from contract.schema import Category
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


def align_spans(caption: str, items: list[dict], token_offsets: list[tuple[int, int]]):
    """(spans, rejected, counts): spans sorted by position, each {text, start, end, match,
    [similarity], [phrase], category, tokens}; `phrase` is the model's phrase where it differs from
    the caption's text. rejected: the items with a "reason". counts: proposed, exact, repaired,
    approximate, rejected.
    """
    spans, rejected = [], []
    counts = {"proposed": len(items), "exact": 0, "repaired": 0, "approximate": 0, "rejected": 0}
    placements = align_phrases(caption, [item["text"] for item in items], overlap=False)  # spans may not overlap
    for item, where in zip(items, placements, strict=True):
        if not where.placed:
            rejected.append({**item, "reason": where.reason})
            continue
        start, end = where.start, where.end
        # an empty token (the first bytes of a split character) counts as the character it starts
        tokens = [i for i, (a, b) in enumerate(token_offsets) if a < end and start < max(b, a + 1)]
        if token_offsets and not tokens:
            rejected.append({**item, "reason": "covers no token"})
            continue
        counts[where.match] += 1
        span = {"text": caption[start:end], "start": start, "end": end, "match": where.match}
        if where.similarity is not None:
            span["similarity"] = where.similarity
        if span["text"] != item["text"].strip():
            span["phrase"] = item["text"]
        spans.append({**span, "category": item["category"], "tokens": tokens})
    counts["rejected"] = len(rejected)
    spans.sort(key=lambda s: s["start"])
    return spans, rejected, counts
