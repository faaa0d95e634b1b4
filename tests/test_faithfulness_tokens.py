"""Per-token faithfulness (`tamscope faithfulness --per-token`, issue 15 point 2) against the
analytic ground truth of tests/test_faithfulness_curves.py: on a 10 x 10 canvas (image all ones,
baseline all zeros, 10 steps of 10 pixels) a scorer that counts the image pixels left in a region
of two rows gives, by hand, deletion area 0.1 / insertion area 0.9 for a map that covers the
region and 0.9 / 0.1 for one that covers the two rows it does not count first.

Each token is ranked by its own 8-bit map and scored by its own scorer: token 0's map covers the
top rows and its scorer counts them (0.1 / 0.9); token 1's map covers the top rows too but its
scorer counts the bottom rows (0.9 / 0.1); token 2 has no map (no curves)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import pytest

from contract.schema import Grid, MapRef, PaintingRecord, Token
from contract.store import write_png
from precompute.stages.faithfulness import per_token

H = W = 10
IMAGE = np.ones((H, W, 3), np.float32)
BASELINE = np.zeros((H, W, 3), np.float32)


def rows(first: int, last: int) -> np.ndarray:
    region = np.zeros((H, W), bool)
    region[first:last] = True
    return region


def counting(region: np.ndarray):
    return lambda images: images[:, region, 0].sum(axis=1)


def test_token_curves_by_hand(tmp_path):
    top = rows(0, 2)
    (tmp_path / "tokens").mkdir()
    write_png(tmp_path / "tokens/0.png", (top * 255).astype(np.uint8))
    write_png(tmp_path / "tokens/1.png", (top * 255).astype(np.uint8))
    caption = "a b c"
    record = PaintingRecord(
        id="p", caption=caption, grid=Grid(h=H, w=W), provenance={"tam": {"variant": "corrected"}},
        tokens=[Token(index=0, text="a", start=0, end=1, map=MapRef(png="tokens/0.png", lo=0, hi=1)),
                Token(index=1, text=" b", start=1, end=3, map=MapRef(png="tokens/1.png", lo=0, hi=1)),
                Token(index=2, text=" c", start=3, end=5)])
    scorers = {0: counting(top), 1: counting(rows(8, 10))}
    asked, batches = [], []

    def scorer_each(tokens):  # images -> (B, K): each token's own count
        asked.append(list(tokens))

        def score(images):
            batches.append(len(images))
            return np.stack([scorers[t](images) for t in tokens], axis=1)

        return score

    painting = SimpleNamespace(session=SimpleNamespace(scorer_each=scorer_each), baseline=BASELINE)
    per_token(record, tmp_path, painting, IMAGE, argparse.Namespace(steps=10, batch_size=4))
    assert asked == [[0, 1]]  # one scorer for every token with a map; the token without one not scored
    assert sum(batches) == 2 + 2 * 2 * 9 and max(batches) <= 4  # the image and baseline once for both
    first, second, third = (t.faithfulness for t in record.tokens)
    assert (first.deletion_area, first.insertion_area) == (pytest.approx(0.1), pytest.approx(0.9))
    assert first.deletion == pytest.approx([1, 0.5] + [0] * 9) and first.insertion == pytest.approx([0, 0.5] + [1] * 9)
    assert (second.deletion_area, second.insertion_area) == (pytest.approx(0.9), pytest.approx(0.1))
    assert (first.score_original, first.score_baseline, first.steps) == (20, 0, 10)
    assert first.method == second.method == "tam-corrected" and third is None
    PaintingRecord.model_validate(record.model_dump())  # the contract takes what the stage wrote


def test_a_token_map_of_the_wrong_size_fails_the_painting(tmp_path):
    from precompute.runner import PaintingError

    (tmp_path / "tokens").mkdir()
    write_png(tmp_path / "tokens/0.png", np.zeros((3, 3), np.uint8))
    record = PaintingRecord(id="p", caption="a", grid=Grid(h=H, w=W),
                            tokens=[Token(index=0, text="a", start=0, end=1, map=MapRef(png="tokens/0.png", lo=0, hi=1))])
    painting = SimpleNamespace(session=SimpleNamespace(scorer_each=lambda t: None), baseline=BASELINE)
    with pytest.raises(PaintingError, match="token 0's map"):
        per_token(record, tmp_path, painting, IMAGE, argparse.Namespace(steps=10, batch_size=4))


def test_the_contract_refuses_curves_of_the_wrong_length():
    from pydantic import ValidationError

    from contract.schema import TokenFaithfulness

    with pytest.raises(ValidationError, match="curve points for 3 steps"):
        TokenFaithfulness(method="tam-reference", score_original=0, score_baseline=-1, steps=3,
                          deletion=[1, 0], insertion=[0, 1], deletion_area=0.5, insertion_area=0.5)
    with pytest.raises(ValidationError, match="areas are set exactly"):
        TokenFaithfulness(method="tam-reference", score_original=0, score_baseline=-1, steps=1,
                          deletion=[1, 0], insertion=[0, 1])
