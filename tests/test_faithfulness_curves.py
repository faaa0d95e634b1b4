"""Deletion and insertion against an analytic ground truth (issue 15, Tests).

The scorer depends only on the pixels of a known region R: it counts R's pixels that still
hold the image (the image is all ones, the baseline all zeros). On a 10 x 10 canvas with R the
top two rows (20 pixels) and 10 steps (10 pixels per step), the normalised curves and their
trapezoidal areas follow by hand:
- a map covering R removes R in the first two steps: deletion 1, 0.5, 0, ..., 0 -> area
  0.1 * (0.75 + 0.25) = 0.1; insertion 0, 0.5, 1, ..., 1 -> 0.1 * (0.25 + 0.75 + 8) = 0.9;
- the inverted map removes R in the last two: deletion area 0.9, insertion area 0.1;
- a random map lies in between.
"""

from __future__ import annotations

import numpy as np
import pytest

from precompute.faithfulness.curves import MIN_GAP, faithfulness_curves, pixel_order, step_counts

H = W = 10
REGION = np.zeros((H, W), bool)
REGION[:2] = True
IMAGE = np.ones((H, W, 3), np.float32)
BASELINE = np.zeros((H, W, 3), np.float32)


class RegionScorer:
    """Counts the region's pixels that hold the image; records how many images it scored."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        return images[:, REGION, 0].sum(axis=1)


def covering() -> np.ndarray:
    return REGION.astype(np.float32)


def test_covering_first_random_middle_inverted_last():
    rng = np.random.default_rng(3)
    maps = [covering(), rng.random((H, W)), 1 - covering()]
    scorer = RegionScorer()
    cover, random, inverted = faithfulness_curves(scorer, IMAGE, BASELINE, maps, steps=10, batch_size=7)
    assert cover.deletion_area == pytest.approx(0.1)
    assert cover.insertion_area == pytest.approx(0.9)
    assert inverted.deletion_area == pytest.approx(0.9)
    assert inverted.insertion_area == pytest.approx(0.1)
    assert cover.deletion_area < random.deletion_area < inverted.deletion_area
    assert cover.insertion_area > random.insertion_area > inverted.insertion_area
    np.testing.assert_allclose(cover.deletion, [1, 0.5] + [0] * 9)
    np.testing.assert_allclose(cover.insertion, [0, 0.5] + [1] * 9)
    np.testing.assert_allclose(cover.fractions, np.arange(11) / 10)
    assert (cover.original, cover.baseline) == (20, 0)
    # the two end points once, then 2 x 9 inner images per map, in batches of at most 7
    assert sum(scorer.calls) == 2 + 3 * 2 * 9 and max(scorer.calls) <= 7


def test_a_coarse_map_is_upsampled_to_the_canvas():
    """On a 5 x 5 grid the region is the top row of cells; bilinear upsampling (cell values 1 then
    0) gives canvas rows 1, 0.75, 0.25, 0, ...: the region's two rows still rank first."""
    grid = np.zeros((5, 5), np.float32)
    grid[0] = 1
    (curves,) = faithfulness_curves(RegionScorer(), IMAGE, BASELINE, [grid], steps=10)
    assert curves.deletion_area == pytest.approx(0.1)
    assert curves.insertion_area == pytest.approx(0.9)
    assert set(pixel_order(grid, (H, W))[:20]) == set(np.flatnonzero(REGION))


def test_ties_are_broken_in_raster_order():
    assert pixel_order(np.ones((2, 2)), (2, 3)).tolist() == [0, 1, 2, 3, 4, 5]


def test_step_counts_round_half_up():
    assert step_counts(100, 10).tolist() == list(range(0, 101, 10))
    assert step_counts(5, 2).tolist() == [0, 3, 5]  # 2.5 -> 3
    assert step_counts(7, 3).tolist() == [0, 2, 5, 7]  # 2.33 -> 2, 4.67 -> 5
    with pytest.raises(ValueError):
        step_counts(10, 0)


def test_batch_size_does_not_change_the_result():
    maps = [np.random.default_rng(s).random((4, 4)) for s in range(3)]
    image = np.random.default_rng(9).random((8, 12, 3)).astype(np.float32)
    baseline = image * 0.2

    def score(images):
        return images[:, :4, :6].sum(axis=(1, 2, 3)) + 0.1 * images[:, 4:].sum(axis=(1, 2, 3))

    one = faithfulness_curves(score, image, baseline, maps, steps=6, batch_size=1)
    many = faithfulness_curves(score, image, baseline, maps, steps=6, batch_size=64)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a.raw_deletion, b.raw_deletion)
        np.testing.assert_allclose(a.raw_insertion, b.raw_insertion)


def test_an_image_independent_score_has_no_areas():
    (curves,) = faithfulness_curves(lambda x: np.full(len(x), -3.0), IMAGE, BASELINE, [covering()], steps=4)
    assert curves.deletion_area is None and curves.insertion_area is None
    assert np.isnan(curves.deletion).all()
    assert MIN_GAP > 0


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.array([[np.nan, 1.0]]), np.zeros(4)])
def test_bad_maps_are_refused(bad):
    with pytest.raises(ValueError):
        faithfulness_curves(RegionScorer(), IMAGE, BASELINE, [bad])


def test_a_scorer_returning_the_wrong_number_of_scores_is_refused():
    with pytest.raises(ValueError, match="scores for"):
        faithfulness_curves(lambda x: np.zeros(1), IMAGE, BASELINE, [covering()], batch_size=4)


def test_image_and_baseline_must_match():
    with pytest.raises(ValueError):
        faithfulness_curves(RegionScorer(), IMAGE, BASELINE[:5], [covering()])
