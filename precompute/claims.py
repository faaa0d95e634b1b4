"""Which META phrase of a caption is the title it claims and which the artist: the heuristics.

The span classifier marks artist, title and date phrases alike as META. Captions name works
in a few fixed ways ('a famous painting titled "The Starry Night" by Vincent van Gogh',
"Edvard Munch's The Scream", "the Norwegian artist Edvard Munch"), so each META phrase gets a
role from the words around it:
- title: preceded by titled / entitled / called / named / known as (with or without an opening
  quote), or quoted in the caption; a title that starts right after an opening quote extends
  to the closing quote (the classifier marked "Self-Portrait" of "Self-Portrait with Sunflowers");
- artist: preceded by "by", "artist", "painter", "attributed to", "work of"; or naming its role
  ("the Norwegian artist Edvard Munch"); or followed by a possessive ("van Gogh's style");
- date: holds a year or a century ("painted in 1889", "13th century");
- other: anything else (movements, genres, a subject such as "a scene from the Last Supper").
A META phrase that holds a title cue inside ("Henri Rousseau, titled The Artist and His Wife")
is split at the cue: the right part is the title, the left part an artist if it is a name.
The first title and the first artist are the claims: no cue, no claim (precision first; the
LLM judge reads the sentence). Spans the imported data could not locate in the caption are
judged on their text alone.
The metadata stage prefers the LLM judge's reading when it gives a valid one (docs/stages.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contract.schema import Category, Span

QUOTES = "\"'“”‘’«»"
TITLE_BEFORE = re.compile(r"\b(?:titled|entitled|called|named|known as|title)\s*[:,]?\s*[\"'“‘«]?\s*$", re.I)
TITLE_INSIDE = re.compile(r"[,;]?\s*\b(?:titled|entitled|called)\s*[:,]?\s*", re.I)
ARTIST_BEFORE = re.compile(r"\b(?:by|artist|painter|attributed to|work of|works of)\s*$", re.I)
ARTIST_ROLE = re.compile(r"\b(?:artist|painter) (?:[A-Z]|van |de |da )")  # "the Norwegian artist Edvard Munch"
DATE = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\bcentur(?:y|ies)\b", re.I)
PARTICLE = r"(?:van|von|de|da|di|der|den|del|della|du|la|le|y)"
NAME = re.compile(rf"^(?:[A-Z][\w'’.-]*|{PARTICLE})(?: (?:[A-Z][\w'’.-]*|{PARTICLE})){{0,4}}$")


@dataclass(frozen=True)
class Claims:
    title: str | None
    artist: str | None
    roles: list[tuple[str, str]]  # (phrase, role) for every META phrase considered, for provenance


def _pieces(span: Span) -> list[tuple[str, int | None, int | None, str | None]]:
    """The span's (text, start, end, forced role), split at a title cue inside it."""
    m = TITLE_INSIDE.search(span.text)
    if m is None or m.start() == 0 or m.end() >= len(span.text):
        return [(span.text, span.start, span.end, None)]
    left, right = span.text[:m.start()], span.text[m.end():]
    left_role = "artist" if NAME.match(left.strip()) else None
    if span.start is None:
        return [(left, None, None, left_role), (right, None, None, "title")]
    return [(left, span.start, span.start + m.start(), left_role), (right, span.start + m.end(), span.end, "title")]


def role_of(caption: str, text: str, start: int | None, end: int | None) -> str:
    if start is not None:
        before, after = caption[max(0, start - 40):start], caption[end:end + 4]
        if TITLE_BEFORE.search(before):
            return "title"
        if before.rstrip(" ")[-1:] in QUOTES and after.lstrip(".,;:!?")[:1] in QUOTES:
            return "title"
        if ARTIST_BEFORE.search(before) or re.match(r"['’]s\b", after):
            return "artist" if not DATE.search(text) else "date"
    if text[:1] in QUOTES and text[-1:] in QUOTES and len(text) > 2:
        return "title"
    if DATE.search(text):
        return "date"
    if ARTIST_ROLE.search(text):
        return "artist"
    return "other"


def extend_to_quotes(caption: str, start: int | None, end: int | None, text: str) -> str:
    """A title starting right after an opening quote runs to the closing quote."""
    if start is None or caption[:start].rstrip(" ")[-1:] not in QUOTES:
        return text
    close = min((i for i in (caption.find(q, end) for q in QUOTES) if i >= 0), default=-1)
    if close < 0 or close - start > 120 or "\n" in caption[end:close]:
        return text
    return caption[start:close].rstrip(".,;:!? ")


def claims_from_spans(caption: str, spans: list[Span]) -> Claims:
    """The title and artist the caption claims, from its META spans (caption order)."""
    roles: list[tuple[str, str]] = []
    for span in spans:
        if span.category != Category.META:
            continue
        for text, start, end, forced in _pieces(span):
            role = forced or role_of(caption, text, start, end)
            if role == "title":
                text = extend_to_quotes(caption, start, end, text)
            roles.append((text.strip(QUOTES + " ,;"), role))
    title = next((t for t, r in roles if r == "title"), None)
    artist = next((t for t, r in roles if r == "artist"), None)
    return Claims(title=title, artist=artist, roles=roles)
