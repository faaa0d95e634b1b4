"""Deletion and insertion curves of a map, and their areas (numpy only, no torch).

The paper's evaluation (section 4, "Evaluation Metric", after RISE, Petsiuk et al. 2018):
- the map (on the vision grid) is upsampled to the canvas (cv2 bilinear, as the Otsu masks of
  contract.metrics) and the canvas's pixels are ranked by it, highest first (ties: raster
  order, so the ranking is deterministic);
- deletion: starting from the image, the top k pixels are replaced by the baseline's (the
  blurred canvas), for k = round(j n / steps), j = 0..steps; insertion: starting from the
  baseline, the top k pixels are the image's;
- each perturbed image is scored (a pluggable `score`: images -> one number each; for the
  captioner the span tokens' log-likelihood under teacher forcing, precompute.faithfulness.
  captioner);
- scores are normalised by those of the original and the baseline image, "following [26]"
  (Jiang et al. 2024, and the authors' evaluation code): n = (s - s_baseline) / (s_original -
  s_baseline). A deletion curve starts at 1 and ends at 0, an insertion curve the reverse.
  Values outside [0, 1] are kept (a perturbed image can score higher than the original);
- the area is the trapezoidal area under the normalised curve over the fraction of pixels
  k / n in [0, 1]. Lower deletion and higher insertion areas mean a more faithful map.

When the original and the baseline score (almost) the same (|gap| < MIN_GAP), the model did
not need the image for these tokens and nothing can be normalised: the curves are NaN and the
areas None (the paper drops such samples from its evaluation).

Cost: the original and the baseline are scored once for every map of a painting; each map
then needs 2 (steps - 1) scored images (the end points are those two). Perturbed images are
scored in batches of `batch_size` across all maps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_STEPS = 10
MIN_GAP = 1e-6  # |s_original - s_baseline| below this: the tokens do not depend on the image

Scorer = Callable[[np.ndarray], np.ndarray]  # (B, H, W, C) float32 images -> (B,) scores


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion of one map. All arrays (steps + 1,)."""

    fractions: np.ndarray  # k / n: the share of the canvas's pixels removed (deletion) or inserted
    deletion: np.ndarray  # normalised scores, 1 -> 0
    insertion: np.ndarray  # normalised scores, 0 -> 1
    raw_deletion: np.ndarray  # the scores themselves
    raw_insertion: np.ndarray
    original: float  # score of the image
    baseline: float  # score of the baseline image

    @property
    def deletion_area(self) -> float | None:
        return area(self.fractions, self.deletion)

    @property
    def insertion_area(self) -> float | None:
        return area(self.fractions, self.insertion)


def area(fractions: np.ndarray, values: np.ndarray) -> float | None:
    """Trapezoidal area under a normalised curve; None when it is undefined (NaN)."""
    if np.isnan(values).any():
        return None
    return float(np.trapezoid(values, fractions))


def upsampled(map_grid: np.ndarray, canvas_hw: tuple[int, int]) -> np.ndarray:
    """(gh, gw) map -> (H, W) float32 at canvas size, cv2 bilinear (pixel-centre aligned)."""
    h, w = canvas_hw
    grid = np.ascontiguousarray(map_grid, dtype=np.float32)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"a map is a 2-D grid, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError("the map holds NaN or infinite values")
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def pixel_order(map_grid: np.ndarray, canvas_hw: tuple[int, int]) -> np.ndarray:
    """(H * W,) raster indices of the canvas's pixels, most important first (ties: raster order)."""
    values = upsampled(map_grid, canvas_hw).ravel()
    return np.argsort(-values, kind="stable")


def step_counts(n_pixels: int, steps: int) -> np.ndarray:
    """(steps + 1,) pixels changed at each step: round(j n / steps), exact in integers (half up)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    j = np.arange(steps + 1, dtype=np.int64)
    return (2 * j * n_pixels + steps) // (2 * steps)


def perturbed(source: np.ndarray, target: np.ndarray, order: np.ndarray, count: int) -> np.ndarray:
    """`source` with its top `count` pixels (by `order`) taken from `target`. (H, W, C)."""
    h, w, c = source.shape
    out = source.reshape(h * w, c).copy()
    idx = order[:count]
    out[idx] = target.reshape(h * w, c)[idx]
    return out.reshape(h, w, c)


def _batched(items: Iterator[np.ndarray], score: Scorer, batch_size: int, width: int | None = None) -> np.ndarray:
    """(N,) scores of the images, or (N, width) with a scorer that gives one score per map."""
    scores: list = []
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            scores += _score(score, batch, width)
            batch = []
    if batch:
        scores += _score(score, batch, width)
    return np.asarray(scores, dtype=np.float64)


def _score(score: Scorer, batch: list[np.ndarray], width: int | None) -> list:
    out = np.asarray(score(np.stack(batch)), dtype=np.float64)
    want = (len(batch),) if width is None else (len(batch), width)
    out = out.reshape(-1) if width is None else out
    if out.shape != want:
        raise ValueError(f"the scorer returned {out.shape} scores for {len(batch)} images, not {want}")
    return out.tolist()


def faithfulness_curves(score: Scorer, image: np.ndarray, baseline: np.ndarray, maps: list[np.ndarray],
                        steps: int = DEFAULT_STEPS, batch_size: int = 8, per_map: bool = False) -> list[Curves]:
    """Deletion and insertion curves of every map (each (gh, gw)) of one image (H, W, C) against
    its baseline (H, W, C), with one scorer. Scored images: 2 + 2 (steps - 1) len(maps).

    per_map: each map has a score of its own (a token's map, that token's log-likelihood): the
    scorer returns (B, len(maps)), column m the score of map m, and map m's curves use column m
    (one pass scores every map's subject, so the image and the baseline are scored once for all)."""
    image = np.asarray(image, dtype=np.float32)
    baseline = np.asarray(baseline, dtype=np.float32)
    if image.ndim != 3 or image.shape != baseline.shape:
        raise ValueError(f"image {image.shape} and baseline {baseline.shape} must be (H, W, C) of one size")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    h, w, _ = image.shape
    counts = step_counts(h * w, steps)
    orders = [pixel_order(m, (h, w)) for m in maps]
    width = len(maps) if per_map else None
    ends = _batched(iter([image, baseline]), score, batch_size, width)  # (2,) or (2, M)

    def inner_images() -> Iterator[np.ndarray]:  # per map: deletion steps 1..steps-1, then insertion's
        for order in orders:
            for k in counts[1:-1]:
                yield perturbed(image, baseline, order, int(k))
            for k in counts[1:-1]:
                yield perturbed(baseline, image, order, int(k))

    inner = _batched(inner_images(), score, batch_size, width)
    if per_map:  # (M * 2 * (steps - 1), M) -> map m's images scored by column m
        inner = inner.reshape(len(maps), 2, steps - 1, len(maps))
        inner = inner[np.arange(len(maps)), :, :, np.arange(len(maps))]
    inner = inner.reshape(len(maps), 2, steps - 1)
    fractions = counts / (h * w)
    out = []
    for m in range(len(maps)):
        original, base = (ends[0, m], ends[1, m]) if per_map else (ends[0], ends[1])
        gap = original - base
        raw_del = np.concatenate([[original], inner[m, 0], [base]])
        raw_ins = np.concatenate([[base], inner[m, 1], [original]])
        if abs(gap) < MIN_GAP:
            nan = np.full(steps + 1, np.nan)
            deletion, insertion = nan, nan.copy()
        else:
            deletion, insertion = (raw_del - base) / gap, (raw_ins - base) / gap
        out.append(Curves(fractions, deletion, insertion, raw_del, raw_ins, float(original), float(base)))
    return out
