"""Metric formulas on maps with known answers."""

import math

import numpy as np
import pytest

from contract.metrics import gini, iou, otsu, resize_to_canvas, span_map, spatial_entropy, top_mass
from tests import independent


def test_entropy_bounds_and_known_value():
    assert spatial_entropy(np.ones((4, 5))) == pytest.approx(1.0)
    one_hot = np.zeros((4, 5)); one_hot[1, 2] = 7
    assert spatial_entropy(one_hot) == pytest.approx(0.0)
    two = np.zeros(16); two[:2] = 1  # two equal cells of 16: log 2 / log 16 = 0.25
    assert spatial_entropy(two) == pytest.approx(0.25)
    assert spatial_entropy(np.zeros((3, 3))) is None and spatial_entropy(np.ones((1, 1))) is None


def test_gini_and_top_mass():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    one_hot = np.zeros(10); one_hot[3] = 1
    assert gini(one_hot) == pytest.approx(1.0)
    assert gini(np.array([0, 0, 1, 1])) == pytest.approx(2 / 3)
    assert top_mass(one_hot) == pytest.approx(1.0)
    assert top_mass(np.ones(20)) == pytest.approx(0.1)
    assert top_mass(np.arange(10.0)) == pytest.approx(9 / 45)
    assert top_mass(np.zeros(5)) is None and gini(np.zeros(5)) is None


def maps_to_threshold() -> dict[str, np.ndarray]:
    """8-bit grid maps of the kinds the metrics meet: noise, one blob, two blobs, mostly dark."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:6, 0:8]
    blob = np.exp(-((y - 2.2) ** 2 + (x - 5.1) ** 2) / 4.5)
    two_blobs = blob + 0.6 * np.exp(-((y - 4.5) ** 2 + (x - 1.0) ** 2) / 2.0)
    return {
        "noise": (rng.random((6, 8)) * 255).astype(np.uint8),
        "blob": np.round(255 * blob / blob.max()).astype(np.uint8),
        "two blobs": np.round(255 * two_blobs / two_blobs.max()).astype(np.uint8),
        "skewed": (255 * rng.random((5, 7)) ** 4).astype(np.uint8),
    }


def test_resize_is_bilinear_with_pixel_centres_aligned():
    """resize_to_canvas against bilinear interpolation written as two matrices in floats: cv2
    works in fixed point on 8-bit images, so the two may differ by one level, never more, and
    the grid's corner cells land on the canvas corners unchanged."""
    for name, grid in maps_to_threshold().items():
        for size in [(80, 60), (333, 251), (37, 19)]:
            got = resize_to_canvas(grid, size)
            want = independent.bilinear(grid, *size)
            assert got.shape == (size[1], size[0]) and got.dtype == np.uint8, name
            assert np.abs(got - want).max() <= 1.0, (name, size)
            assert got[0, 0] == grid[0, 0] and got[-1, -1] == grid[-1, -1], (name, size)


@pytest.mark.parametrize("name", list(maps_to_threshold()))
def test_otsu_maximises_the_between_class_variance(name):
    """The threshold of docs/metrics.md: the t (a level of the map resized to the canvas) that
    maximises the between-class variance of {<= t} and {> t}, searched by brute force over all
    256 levels; the mask is value > t."""
    grid, size = maps_to_threshold()[name], (160, 120)
    t, mask = otsu(grid, size)
    resized = resize_to_canvas(grid, size)
    sigma = independent.between_class_variance(resized)
    assert sigma[t] == pytest.approx(np.nanmax(sigma), rel=1e-9)
    assert t == independent.otsu_threshold(resized)
    assert mask.shape == (120, 160) and (mask == (resized > t)).all()
    t_independent, mask_independent = independent.otsu_mask(grid, *size)  # cv2's resize, called directly
    assert t == t_independent and (mask == mask_independent).all()


def test_otsu_convention_on_two_levels_and_one():
    """cv2's convention, which docs/metrics.md documents: t is the last level of the lower
    class (mask = value > t) and the lowest of equally good thresholds, so two levels 50 and 200
    give t = 50, not 200 or anything between; a map with one level gives t = 0 (skimage's
    threshold_otsu would return the level itself), so an all-zero map has an empty mask and
    any other constant map a full one."""
    grid = np.full((4, 4), 50, np.uint8)
    grid[:, 2:] = 200
    canvas = np.where(np.arange(64) < 32, 50, 200).astype(np.uint8)[None, :].repeat(8, axis=0)
    t, mask = otsu(canvas, (64, 8))  # no interpolation: already at canvas size
    assert t == 50 == independent.otsu_threshold(canvas) and (mask == (canvas == 200)).all()
    assert otsu(grid, (4, 4))[0] == 50
    for level in (0, 7):
        t, mask = otsu(np.full((3, 3), level, np.uint8), (30, 30))
        assert t == 0 and mask.all() == bool(level) and mask.any() == bool(level)


def test_iou():
    a = np.zeros((4, 4), bool); a[:2] = True
    b = np.zeros((4, 4), bool); b[1:3] = True
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(a, a) == 1.0 and iou(np.zeros((2, 2)), np.zeros((2, 2))) is None
    with pytest.raises(ValueError):
        iou(a, np.zeros((3, 3)))


def test_span_map_mean_and_max():
    maps = np.stack([np.eye(3) * 0.5, np.eye(3)[::-1] * 1.0])
    u8, lo, hi = span_map(maps, "mean")
    assert (lo, hi) == (0.0, 0.75) and u8[1, 1] == 255 and u8[0, 1] == 0
    assert u8[0, 0] == round(0.25 / 0.75 * 255)
    u8m, _, hi_m = span_map(maps, "max")
    assert hi_m == 1.0 and u8m[0, 2] == 255 and u8m[0, 0] == round(0.5 * 255)
    flat, lo_f, hi_f = span_map(np.full((2, 3, 3), 0.4))
    assert (flat == 0).all() and lo_f == hi_f == pytest.approx(0.4)
    # the max map's 9 cells by hand: 128 at two diagonal corners, 255 on the anti-diagonal, 0
    # elsewhere; its metrics on the 8-bit values (sums far beyond 255: no uint8 arithmetic)
    assert sorted(u8m.ravel().tolist()) == [0, 0, 0, 0, 128, 128, 255, 255, 255]
    p = np.array([128, 128, 255, 255, 255]) / 1021
    assert spatial_entropy(u8m) == pytest.approx(-(p * np.log(p)).sum() / math.log(9), rel=1e-12)
    assert top_mass(u8m) == pytest.approx(255 / 1021)  # ceil(0.9) = 1 cell
    # Gini from its definition, mean |xi - xj| over all 81 ordered pairs / (2 mean), x 9/8
    x = u8m.ravel().astype(float)
    assert gini(u8m) == pytest.approx(np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean()) * 9 / 8)
