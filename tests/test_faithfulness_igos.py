"""iGOS++ on an analytic scorer recovers the region the score depends on (issue 15, Tests).

The scorer is a log-likelihood-like function of the pixels of a known region R alone: 0 when R
shows the image, -5 when R shows the baseline, quadratic in between. Outside R nothing changes
the score, so the L1 term should empty the heatmap there, while deleting R (or inserting it)
moves the score fully: the thresholded heatmap should be R.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.faithfulness.curves import faithfulness_curves
from precompute.faithfulness.igos import IgosSettings, bilateral_tv, igos_map, upsample

GRID = (8, 8)
CANVAS = (32, 32)  # 4 x 4 pixels per cell
REGION_CELLS = np.zeros(GRID, bool)
REGION_CELLS[2:5, 1:3] = True  # 6 of 64 cells
REGION = np.kron(REGION_CELLS, np.ones((4, 4), bool))
rng = np.random.default_rng(0)
IMAGE = rng.uniform(60, 250, CANVAS + (3,)).astype(np.float32)
BASELINE = np.full(CANVAS + (3,), 128.0, np.float32)


def torch_score(images: torch.Tensor) -> torch.Tensor:
    image, base = torch.from_numpy(IMAGE), torch.from_numpy(BASELINE)
    r = torch.from_numpy(REGION)
    dist = ((images - image) ** 2)[:, r].mean((1, 2))  # (B,)
    return -5 * dist / ((base - image) ** 2)[r].mean()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_igos_recovers_the_region():
    heat = igos_map(torch_score, IMAGE, BASELINE, GRID, IgosSettings(ig_steps=4))  # the default 10 iterations
    assert heat.shape == GRID and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert iou(heat > 0.5, REGION_CELLS) > 0.8
    # and it is a faithful map by the metric: it deletes and inserts the region first
    (curves,) = faithfulness_curves(lambda x: torch_score(torch.from_numpy(x)).numpy(), IMAGE, BASELINE, [heat])
    assert curves.deletion_area < 0.15 and curves.insertion_area > 0.85


def test_without_data_term_the_regularisers_empty_the_map():
    heat = igos_map(lambda x: torch.zeros(x.shape[0], dtype=x.dtype) + 0 * x.sum((1, 2, 3)), IMAGE, BASELINE,
                    GRID, IgosSettings(iterations=5))
    assert heat.max() == 0


def test_upsample_matches_cv2_bilinear():
    import cv2

    grid = rng.random(GRID)
    ours = upsample(torch.from_numpy(grid), CANVAS).numpy()
    np.testing.assert_allclose(ours, cv2.resize(grid, CANVAS[::-1], interpolation=cv2.INTER_LINEAR), atol=1e-9)


def test_bilateral_tv_is_zero_for_a_constant_mask_and_grows_with_edges():
    h = torch.full(GRID, 0.5, dtype=torch.float64)
    image01 = torch.from_numpy(IMAGE / 255).double()
    assert bilateral_tv(h, upsample(h, CANVAS), image01, 0.1) == 0
    step = torch.zeros(GRID, dtype=torch.float64)
    step[:, 4:] = 1
    assert bilateral_tv(step, upsample(step, CANVAS), image01, 0.1) > 0


def test_mismatched_baseline_is_refused():
    with pytest.raises(ValueError):
        igos_map(torch_score, IMAGE, BASELINE[:16], GRID)
