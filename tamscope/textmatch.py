"""Finding a phrase a language model quoted in the caption it quoted from.

LLMs copy phrases imperfectly: they drop commas ("large bright red sun" for "large, bright
red sun"), split words at token boundaries ("The S cream"), change case or quotes. We look
for the exact text first; failing that, for the same letters and digits ignoring case,
punctuation and spacing, mapped back to exact caption offsets (a "repair"). Among several
occurrences the one nearest to `anchor` wins. Nothing else is guessed.
"""

from __future__ import annotations

import unicodedata


def _folded(text: str) -> tuple[str, list[int]]:
    """Lower-cased letters and digits of `text`, and each one's index in `text`."""
    chars, index = [], []
    for i, ch in enumerate(text):
        if ch.isalnum():
            base = unicodedata.normalize("NFKD", ch)[0].lower()
            chars.append(base)
            index.append(i)
    return "".join(chars), index


def _occurrences(haystack: str, needle: str) -> list[int]:
    hits, pos = [], haystack.find(needle)
    while pos >= 0:
        hits.append(pos)
        pos = haystack.find(needle, pos + 1)
    return hits


def find_phrase(caption: str, phrase: str, anchor: int = 0) -> tuple[int, int, str] | None:
    """(start, end, "exact" | "repaired") of `phrase` in `caption`, or None."""
    phrase = phrase.strip()
    if not phrase:
        return None
    hits = _occurrences(caption, phrase)
    if hits:
        start = min(hits, key=lambda h: abs(h - anchor))
        return start, start + len(phrase), "exact"
    folded_caption, index = _folded(caption)
    folded_phrase, _ = _folded(phrase)
    if len(folded_phrase) < 2:
        return None
    hits = _occurrences(folded_caption, folded_phrase)
    if not hits:
        return None
    best = min(hits, key=lambda h: abs(index[h] - anchor))
    return index[best], index[best + len(folded_phrase) - 1] + 1, "repaired"
