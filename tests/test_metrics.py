"""Metric formulas on maps with known answers."""

import math

import cv2
import numpy as np
import pytest

from contract.metrics import gini, iou, otsu, span_map, spatial_entropy, top_mass


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


def test_otsu_matches_cv2_on_the_resized_map():
    rng = np.random.default_rng(0)
    grid = (rng.random((6, 8)) * 255).astype(np.uint8)
    t, mask = otsu(grid, (80, 60))
    resized = cv2.resize(grid, (80, 60), interpolation=cv2.INTER_LINEAR)
    want, _ = cv2.threshold(resized, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    assert t == int(want) and mask.shape == (60, 80) and (mask == (resized > want)).all()


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
    assert math.isclose(spatial_entropy(u8m), spatial_entropy(u8m.astype(float)))
