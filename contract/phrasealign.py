"""Placing a list of phrases in the caption they were quoted from: one aligner for the pipeline's
span stage and for the importer of the paper authors' spans.

**How a phrase is found.** The first kind that finds anything decides:
- exact: the text occurs as written;
- repaired: the same letters and digits, ignoring case, accents, punctuation and spacing
  ("large bright red sun" for "large, bright red sun", "The S cream" for "The Scream");
- approximate: a reworded phrase ("Virgin Mary and Christ Child" for "Virgin Mary and the Christ
  Child"). Words are runs of letters and digits, folded as for repairs. difflib's SequenceMatcher
  matches the phrase's words with each run of caption words (Ratcliff-Obershelp: the longest
  block of words in common, then the same on each side of it); the similarity is its ratio
  2M / (n + m), M the matched words, n and m the words of the phrase and of the run. A phrase word
  the caption does not contain stands for the caption word most like it when their letters are
  at least THRESHOLD alike (difflib.get_close_matches: "Rousse", a name cut at a token boundary,
  for "Rousseau"; "earth" for "earthy") and counts as that fraction of a match. Runs reaching
  THRESHOLD qualify; the most similar win.
A hit never starts or ends inside a word: "Rousse" is not found in "Rousseau" exactly, but
approximately as "Rousseau" (similarity 0.86). Text written without spaces between words
(Chinese, Japanese) has no word boundaries to keep and is not supported.

THRESHOLD = 0.8: on runs of words it admits one extra or missing word for every two that match
("halo and style" for "halo and the style": 0.86; a two-word phrase with a word inserted: 0.8) and
rejects a two-word phrase of which only one word is there ("dark background" where the caption
says "the background is dark": 0.67) and a four-word phrase with one word replaced (0.75). On the
authors' published sample the lowest similarity accepted is 0.83 and the highest below the
threshold 0.67 (docs/metrics.md).

**Which occurrence.** Phrases come in caption order (the span classifier is asked for it; the
authors' spans are listed so, with exceptions: a list that goes back to an earlier part of the
caption, a title named last). Each phrase's equally good hits are candidates; the phrases placed
are the longest chain of them in caption order, one hit each (of several longest chains, the one
that places earlier phrases, each as early as possible). In order means: after the previous
phrase of the chain without overlapping it (`overlap=False`: the pipeline, whose spans become
inline buttons), or with `overlap=True` (imported spans, which nest and repeat) starting later or
at the same place but longer; never the very same range, so a repeated phrase takes successive
occurrences. A phrase left out of the chain takes a free hit (not overlapping a placed phrase,
or with `overlap=True` not the range of one) between its chain neighbours, else the free hit
nearest to them; with `overlap=True` a phrase whose every hit is taken is stacked on one.

**Cost**, bounded for hostile input (a caption of thousands of repeated words): at most
APPROXIMATE_BUDGET runs of words are compared per caption (370 at most on the published sample;
a phrase the budget did not reach is left unplaced with that reason), a phrase keeps its first
MOST_HITS hits, and phrases of more than LONGEST_APPROXIMATE words (sentences) are only found
exactly or repaired.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from difflib import SequenceMatcher, get_close_matches

from contract.textmatch import fold_word, phrase_occurrences

THRESHOLD = 0.8
APPROXIMATE_BUDGET = 20_000
MOST_HITS = 200
LONGEST_APPROXIMATE = 40
_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits


@dataclass(frozen=True)
class Placement:
    """Where a phrase sits: caption[start:end] and how it was found (`match`: exact, repaired,
    approximate, with the `similarity` of an approximate match), or why it has no place (`reason`:
    no letters or digits, not in the caption, overlaps another span)."""

    start: int | None = None
    end: int | None = None
    match: str | None = None
    similarity: float | None = None
    reason: str | None = None

    @property
    def placed(self) -> bool:
        return self.start is not None


class _Caption:
    """The caption's words, and what is left of the approximate search's budget."""

    def __init__(self, text: str):
        self.text = text
        self.words = [(m.start(), m.end(), fold_word(m.group())) for m in _WORD.finditer(text)]
        self.folded = [w for _, _, w in self.words]
        self.vocabulary = set(self.folded)
        self.budget = APPROXIMATE_BUDGET


def _approximate(caption: _Caption, phrase: str, threshold: float = THRESHOLD) -> list[Placement] | None:
    """Every run of caption words at least `threshold` similar to the phrase; None when the budget
    ran out before the search ended."""
    wanted, weight = [], []  # the phrase's words as caption words, and what matching each is worth
    for m in _WORD.finditer(phrase):
        word = fold_word(m.group())
        near = [word] if word in caption.vocabulary else get_close_matches(word, caption.vocabulary, 1, THRESHOLD)
        wanted.append(near[0] if near else word)
        weight.append(SequenceMatcher(None, near[0], word).ratio() if near else 0.0)  # as get_close_matches rates it
    n = len(wanted)
    if not n or n > LONGEST_APPROXIMATE:
        return []
    longest = math.floor(n * (2 - threshold) / threshold + 1e-9)  # a longer run cannot reach the threshold
    useful = set(wanted)
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)  # difflib caches what it learns about seq2: the phrase, compared to many runs
    out = []
    words = caption.folded
    for i, (start, _, first) in enumerate(caption.words):
        if first not in useful:  # a run that starts or ends with an unmatched word loses to a shorter one
            continue
        for j in range(i, min(len(words), i + longest)):
            if words[j] not in useful:
                continue
            if caption.budget <= 0:
                return None
            caption.budget -= 1
            matcher.set_seq1(words[i:j + 1])
            matched = sum(weight[b + k] for _, b, size in matcher.get_matching_blocks() for k in range(size))
            similarity = 2 * matched / (n + j + 1 - i)
            if similarity >= threshold - 1e-9:
                out.append(Placement(start, caption.words[j][1], "approximate", round(similarity, 4)))
    return out


def best_similarity(caption: str, phrase: str, floor: float = 0.5) -> float | None:
    """The similarity of the run of caption words most like `phrase` when it is at least `floor`
    (to measure how far phrases left unplaced are from THRESHOLD), else None."""
    found = _approximate(_Caption(caption), phrase, floor)
    return max((h.similarity for h in found or []), default=None)


def _hits(caption: _Caption, phrase: str) -> list[Placement] | str:
    """The phrase's best hits in caption order (the preferred kind that has any, the most similar),
    or why there is none."""
    if not any(ch.isalnum() for ch in phrase):
        return "no letters or digits"
    occurrences, how = phrase_occurrences(caption.text, phrase)
    if occurrences:
        return [Placement(s, e, how) for s, e in occurrences[:MOST_HITS]]
    found = _approximate(caption, phrase)
    if found is None:
        return f"not found exactly, and the approximate search stopped ({APPROXIMATE_BUDGET} runs compared)"
    if not found:
        return "not in the caption"
    best = max(h.similarity for h in found)
    return [h for h in found if h.similarity == best][:MOST_HITS]


class _SuffixMax:
    """The maximum of the values set at positions >= p (a Fenwick tree over reversed positions)."""

    def __init__(self, size: int):
        self.size, self.tree = size, [0] * (size + 1)

    def set(self, position: int, value: int) -> None:
        i = self.size - position
        while i <= self.size:
            self.tree[i] = max(self.tree[i], value)
            i += i & -i

    def max_from(self, position: int) -> int:
        i, best = self.size - position, 0
        while i > 0:
            best = max(best, self.tree[i])
            i -= i & -i
        return best


def _follows(before: Placement, after: Placement, overlap: bool) -> bool:
    if overlap:
        return (after.start, after.end) > (before.start, before.end)
    return after.start >= before.end


def _longest_chain(hits: list[list[Placement]], overlap: bool) -> list[Placement | None]:
    """For each phrase its hit in the chosen longest chain, or None (module docstring).

    Backwards over the phrases, `length[i][k]` is the longest chain that starts with hit k of
    phrase i; the hits of later phrases are kept in a suffix-maximum tree keyed by their place in
    caption order, so a phrase's hits never chain with each other and the whole takes
    O(hits log hits). Forwards, each phrase takes its first hit that follows the chain so far and
    still starts a chain as long as the one wanted."""
    keys = sorted({(h.start, h.end) for row in hits for h in row})
    tree = _SuffixMax(len(keys))
    length = [[0] * len(row) for row in hits]
    for i in range(len(hits) - 1, -1, -1):
        for k, h in enumerate(hits[i]):
            first_after = bisect_right(keys, (h.start, h.end)) if overlap else bisect_left(keys, (h.end, -1))
            length[i][k] = 1 + tree.max_from(first_after)
        for k, h in enumerate(hits[i]):
            tree.set(bisect_left(keys, (h.start, h.end)), length[i][k])
    wanted = max((n for row in length for n in row), default=0)
    chain, last = [], None
    for i, row in enumerate(hits):
        k = next((k for k, h in enumerate(row) if wanted and length[i][k] >= wanted
                  and (last is None or _follows(last, h, overlap))), None)
        chain.append(None if k is None else row[k])
        if k is not None:
            last, wanted = row[k], wanted - 1
    return chain


def align_phrases(caption: str, phrases: list[str], *, overlap: bool) -> list[Placement]:
    """A Placement for each phrase, in the order given (module docstring)."""
    text, known = _Caption(caption), {}
    found = [known[p] if p in known else known.setdefault(p, _hits(text, p)) for p in phrases]
    hits = [f if isinstance(f, list) else [] for f in found]
    chain = _longest_chain(hits, overlap)
    placed = {(c.start, c.end): c for c in chain if c is not None}
    out = []
    for i, row in enumerate(hits):
        if chain[i] is not None:
            out.append(chain[i])
            continue
        if not row:
            out.append(Placement(reason=found[i]))
            continue
        if overlap:
            free = [h for h in row if (h.start, h.end) not in placed] or row
        else:
            free = [h for h in row if not any(h.start < p.end and p.start < h.end for p in placed.values())]
        if not free:
            out.append(Placement(reason="overlaps another span"))
            continue
        after = max((c.start for c in chain[:i] if c is not None), default=0)
        before = min((c.start for c in chain[i + 1:] if c is not None), default=len(caption))
        choice = min(free, key=lambda h: (max(after - h.start, h.start - before, 0), h.start))
        out.append(choice)
        placed.setdefault((choice.start, choice.end), choice)
    return out
