"""contract/phrasealign.py: phrases placed on whole words, in list order, exactly, repaired or
approximately. Expected similarities are worked out by hand in the comments (2M / (n + m): M
matched words, n and m the words of the phrase and of the run); the order rule is checked against
tests/independent.py's exhaustive search on random captions."""

from __future__ import annotations

import random

import pytest

from contract.phrasealign import APPROXIMATE_BUDGET, MOST_HITS, Placement, align_phrases
from tests import independent


def place(caption: str, *phrases: str, overlap: bool = True) -> list[Placement]:
    return align_phrases(caption, list(phrases), overlap=overlap)


def placed_text(caption: str, p: Placement) -> str | None:
    return caption[p.start:p.end] if p.placed else None


@pytest.mark.parametrize("caption, phrase, text, similarity", [
    # 8 phrase words, all in a run of 9: 16 / 17
    ("It shows the Virgin Mary and the Christ Child at the center.", "Virgin Mary and Christ Child at the center",
     "Virgin Mary and the Christ Child at the center", 16 / 17),
    # 3 of 3 in a run of 4: 6 / 7
    ("based on the halo and the style of the painting", "halo and style", "halo and the style", 6 / 7),
    # a two-word phrase with a word inserted: 4 / 5, exactly the threshold
    ("a red hot sun", "red sun", "red hot sun", 4 / 5),
    # "rousse" is not a caption word; "rousseau" shares its 6 letters: 2 * 6 / (6 + 8) = 12 / 14,
    # and that is what the one word of the phrase matching one word of the run is worth
    ("a painting by Henri Rousseau, titled", "Rousse", "Rousseau", 12 / 14),
    # ... and inside a longer phrase: (2 * (1 + 12/14 + 1 + 1 + 1 + 1 + 1 + 1)) / (8 + 8)
    ('by Henri Rousseau, titled "The Artist and His Wife."', "Henri Rousse, titled The Artist and His Wife",
     'Henri Rousseau, titled "The Artist and His Wife', 2 * (7 + 12 / 14) / 16),
])
def test_reworded_phrases_are_placed_approximately(caption, phrase, text, similarity):
    [p] = place(caption, phrase)
    assert (placed_text(caption, p), p.match) == (text, "approximate")
    assert p.similarity == pytest.approx(similarity, abs=5e-5)


@pytest.mark.parametrize("caption, phrase", [
    ("The background is dark.", "dark background"),  # one of two words in any run: 2 / 3
    ("a big blue boat", "a big red boat"),  # one word of four replaced: 6 / 8
    ("The composition is dynamic.", "dynamic composition"),
])
def test_below_the_threshold_is_not_in_the_caption(caption, phrase):
    assert place(caption, phrase) == [Placement(reason="not in the caption")]


def test_never_starts_or_ends_inside_a_word():
    caption = "A martyr of art; onlookers in the square."
    art, lookers, square = place(caption, "art", "lookers", "squa")
    assert (placed_text(caption, art), art.match) == ("art", "exact")  # not the "art" of "martyr"
    assert (placed_text(caption, lookers), lookers.match) == ("onlookers", "approximate")  # 2*7/16 letters alike
    assert (placed_text(caption, square), square.match) == ("square", "approximate")  # 2*4/10 = 0.8
    repaired = place("The Scream, 1893", "The S cream")[0]
    assert (repaired.start, repaired.end, repaired.match) == (0, 10, "repaired")


def test_exact_beats_repaired_beats_approximate():
    caption = "a large, bright red sun; a large bright red sun. large bright red suns"
    [p] = place(caption, "large bright red sun")
    assert (p.start, p.match) == (caption.index("large bright red sun."), "exact")
    [p] = place("a large, bright red sun and large bright red suns", "large bright red sun")
    assert p.match == "repaired" and p.start == 2


def test_repeated_phrases_take_successive_occurrences():
    caption = "A woman washing clothes, a river, a woman washing clothes, a dog, a woman washing clothes."
    phrase = "woman washing clothes"
    starts = [i for i in range(len(caption)) if caption.startswith(phrase, i)]
    got = place(caption, phrase, "river", phrase, "dog", phrase, phrase)
    # the 4th has no free occurrence left: stacked on the one nearest its place in the list (after the 3rd)
    assert [p.start for p in got if "woman" in placed_text(caption, p)] == [*starts, starts[2]]
    # imported spans keep a place; the pipeline's spans may not overlap:
    assert place(caption, phrase, phrase, phrase, phrase, overlap=False)[-1] == Placement(reason="overlaps another span")


def test_a_phrase_listed_out_of_order_keeps_its_place():
    """The Thunderstorm of the published sample: the list names the numbered items, then goes back
    to "style of the painting" at the caption's start; a phrase-by-phrase cursor would take its
    second occurrence at the end. The longest chain in caption order keeps the early one."""
    caption = ("The style of the painting is folk art, with vibrant colors and simple brushstrokes. 1. Barn: red. "
               "2. Sky: dark. The overall style of the painting is vibrant.")
    phrases = ["Barn", "Sky", "style of the painting", "folk art", "vibrant colors", "simple brushstrokes"]
    got = place(caption, *phrases)
    assert got[2].start == caption.index("style of the painting")
    assert [placed_text(caption, p) for p in got] == phrases
    # a title the list names last sits where the caption has it
    caption = 'By Henri Rousseau, titled "The Dream". Two figures in a garden.'
    got = place(caption, "two figures", "garden", "The Dream")
    assert got[2].start == caption.index("The Dream")


def test_no_letters_and_not_found_say_why():
    got = place("a cat", "...", "", "a dog and a horse", overlap=False)
    assert [p.reason for p in got] == ["no letters or digits", "no letters or digits", "not in the caption"]


def test_agrees_with_an_exhaustive_search_on_random_captions():
    """Captions of a few repeated words (many equal hits, nesting, approximate runs, near words):
    the Fenwick-tree chain and difflib's matching against tests/independent.py's brute force."""
    rng = random.Random(12)
    vocabulary = ["a", "cat", "dog", "the", "red", "sun", "sea", "boat", "old", "man"]
    for _ in range(300):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 22))]
        caption = " ".join(words) + "."
        phrases = []
        for _ in range(rng.randint(1, 7)):
            i = rng.randrange(len(words))
            chosen = words[i:i + rng.randint(1, 4)]
            roll = rng.random()
            if roll < 0.2 and len(chosen) > 1:
                chosen = chosen[:1] + chosen[2:]  # a word dropped
            elif roll < 0.3:
                chosen = chosen + [rng.choice(vocabulary)]  # a word added
            elif roll < 0.35:
                chosen = ["cats"] + chosen  # a near word
            phrases.append(" ".join(chosen))
        for overlap in (True, False):
            got = align_phrases(caption, phrases, overlap=overlap)
            want = independent.placements(caption, phrases, overlap)
            for phrase, p, w in zip(phrases, got, want, strict=True):
                assert (p.placed, p.start, p.end, p.match) == (
                    w is not None, *((w["start"], w["end"], w["match"]) if w else (None, None, None))), (
                    caption, phrases, phrase, overlap)
                if w and w["similarity"] is not None:
                    assert p.similarity == pytest.approx(w["similarity"], abs=5e-5)


def test_hostile_captions_stay_bounded():
    """Thousands of repeated words: the approximate search stops at its budget with a reason, a
    phrase keeps at most MOST_HITS hits, and the whole returns (no timing asserted)."""
    caption = " ".join(["the", "old", "man"] * 8000)
    got = place(caption, "the old man and the sea", *["the"] * (MOST_HITS + 5), overlap=False)
    assert got[0].reason == f"not found exactly, and the approximate search stopped ({APPROXIMATE_BUDGET} runs compared)"
    assert sum(p.placed for p in got) == MOST_HITS
    assert sum(p.reason == "overlaps another span" for p in got) == 5
