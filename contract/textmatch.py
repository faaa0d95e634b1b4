"""Finding a phrase a language model quoted in the caption it quoted from.

LLMs copy phrases imperfectly: they drop commas ("large bright red sun" for "large, bright
red sun"), split words at token boundaries ("The S cream"), change case or quotes. We look
for the exact text first; failing that, for the same letters and digits ignoring case,
punctuation and spacing, mapped back to exact caption offsets (a "repair"). A match never
starts or ends inside a word ("Rousse" is not in "Rousseau"). Placing a whole list of phrases,
with order and approximate matches for reworded ones, is contract.phrasealign's job.
"""

from __future__ import annotations

import re
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


def fold_word(word: str) -> str:
    """A word as repairs compare it: its letters and digits, lower case, accents removed."""
    return _folded(word)[0]


def whole_words(caption: str, start: int, end: int) -> bool:
    """caption[start:end] neither starts nor ends inside a word."""
    cuts_start = 0 < start < len(caption) and caption[start - 1].isalnum() and caption[start].isalnum()
    cuts_end = 0 < end < len(caption) and caption[end - 1].isalnum() and caption[end].isalnum()
    return not (cuts_start or cuts_end)


def _occurrences(haystack: str, needle: str) -> list[int]:
    hits, pos = [], haystack.find(needle)
    while pos >= 0:
        hits.append(pos)
        pos = haystack.find(needle, pos + 1)
    return hits


def phrase_occurrences(caption: str, phrase: str, *, inside_words: bool = False
                       ) -> tuple[list[tuple[int, int]], str]:
    """Every (start, end) of `phrase` in `caption` on whole words, in caption order, and how they
    were found: "exact" when the text occurs as is, else "repaired" (letters and digits only,
    ignoring case, accents, punctuation and spacing). ([], "") when it does not occur or has
    under 2 letters. `inside_words` also keeps occurrences that start or end inside a word
    (the rule before issue 12, kept to measure what it changed)."""
    phrase = phrase.strip()
    if not phrase:
        return [], ""

    def kept(hits: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return hits if inside_words else [(s, e) for s, e in hits if whole_words(caption, s, e)]

    hits = kept([(h, h + len(phrase)) for h in _occurrences(caption, phrase)])
    if hits:
        return hits, "exact"
    folded_caption, index = _folded(caption)
    folded_phrase, _ = _folded(phrase)
    if len(folded_phrase) < 2:
        return [], ""
    hits = kept([(index[h], index[h + len(folded_phrase) - 1] + 1) for h in _occurrences(folded_caption, folded_phrase)])
    return hits, "repaired" if hits else ""


def find_phrase(caption: str, phrase: str, anchor: int = 0) -> tuple[int, int, str] | None:
    """(start, end, "exact" | "repaired") of `phrase` in `caption` (on whole words) nearest to
    `anchor`, or None."""
    spans, how = phrase_occurrences(caption, phrase)
    if not spans:
        return None
    start, end = min(spans, key=lambda s: abs(s[0] - anchor))
    return start, end, how


# -- grading claimed titles and artists (the metadata stage's deterministic string match) --

ARTICLES = {"the", "a", "an", "le", "la", "les", "l", "il", "lo", "el", "der", "die", "das", "de", "het"}
# name particles: "van Gogh Vincent" and "Vincent van Gogh", "El Greco" and "Greco" are the same person
PARTICLES = {"van", "von", "de", "da", "di", "der", "den", "del", "della", "du", "la", "le", "el", "the", "y"}


def folded_words(text: str) -> list[str]:
    """Lower-case words of letters and digits, accents removed ("Maestà" -> ["maesta"])."""
    chars = [" " if not ch.isalnum() else ch.lower()
             for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)]
    return "".join(chars).split()


def title_alternatives(title: str) -> list[list[str]]:
    """A title and its parenthesised alternative ("Madonna in Maestà (Ognissanti Madonna)")."""
    outside = re.sub(r"\([^)]*\)", " ", title)
    inside = re.findall(r"\(([^)]*)\)", title)
    out = []
    for part in [title, outside, *inside]:
        words = folded_words(part)
        if words and words[0] in ARTICLES and len(words) > 1:
            words = words[1:]
        if words and words not in out:
            out.append(words)
    return out


def title_matches(claimed: str, truth: str) -> bool:
    """The same words in the same order, ignoring case, accents, punctuation and a leading
    article, against the title or its parenthesised alternative. Synonyms ("Virgin" for
    "Madonna") are not matched: that is the judge's job."""
    claim = title_alternatives(claimed)
    return bool(claim) and claim[0] in title_alternatives(truth)


def _name_words(text: str) -> set[str]:
    return {w for w in folded_words(text) if w not in PARTICLES}


def artist_matches(claimed: str, truth: str) -> bool:
    """Token sets, in any order ("van Gogh Vincent" = "Vincent van Gogh"): every word of the
    true name appears in the claim (extra words allowed: "the Norwegian artist Edvard Munch"),
    or every word of the claim belongs to the true name ("Gauguin", "P. Gauguin": an initial
    matches a name starting with it), with at least one full word."""
    claim, name = _name_words(claimed), _name_words(truth)
    if not claim or not name:
        return False
    if name <= claim:
        return True
    full = {w for w in claim if len(w) > 1}
    initials = claim - full
    return bool(full) and full <= name and all(any(n.startswith(i) for n in name) for i in initials)
