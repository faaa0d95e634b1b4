"""How localised a map is, and how it compares with a segmentation (docs/metrics.md).

All metrics of a span are computed on its stored 8-bit map on the vision grid, so the
published maps (imported) and ours are measured identically:
- normalised spatial entropy: p = map / sum(map) over all N grid cells,
  H = -sum p log p / log N (0: all mass in one cell, 1: uniform); None for an all-zero map
  or a single-cell grid (nothing to normalise by);
- Gini coefficient of the cell values (0: uniform, -> 1: concentrated);
- top-10% mass: the share of the total in the ceil(0.1 N) largest cells;
- Otsu: cv2's Otsu threshold on the 8-bit map bilinearly resized (INTER_LINEAR) to the
  canvas; the mask is value > threshold;
- IoU of two boolean masks; None when both are empty.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def spatial_entropy(values: np.ndarray) -> float | None:
    x = np.asarray(values, dtype=np.float64).ravel()
    total = x.sum()
    if total <= 0 or x.size < 2:
        return None
    p = x[x > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(x.size))


def gini(values: np.ndarray) -> float | None:
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n, total = x.size, x.sum()
    if total <= 0 or n < 2:
        return None
    # G = sum_i (2i - n - 1) x_(i) / (n sum x), i = 1..n over sorted values, scaled to reach 1 at one cell
    g = float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * total))
    return min(1.0, g * n / (n - 1))


def top_mass(values: np.ndarray, frac: float = 0.10) -> float | None:
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]
    total = x.sum()
    if total <= 0:
        return None
    k = max(1, math.ceil(frac * x.size))
    return float(x[:k].sum() / total)


def resize_to_canvas(map_u8: np.ndarray, canvas_wh: tuple[int, int]) -> np.ndarray:
    """8-bit grid map -> 8-bit map at canvas size (cv2 bilinear, pixel-centre aligned)."""
    return cv2.resize(np.ascontiguousarray(map_u8, dtype=np.uint8), canvas_wh, interpolation=cv2.INTER_LINEAR)


def otsu(map_u8: np.ndarray, canvas_wh: tuple[int, int]) -> tuple[int, np.ndarray]:
    """(threshold, mask H x W bool) of the map resized to the canvas."""
    resized = resize_to_canvas(map_u8, canvas_wh)
    threshold, _ = cv2.threshold(resized, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(threshold), resized > threshold


def iou(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return None
    return float(np.logical_and(a, b).sum() / union)


def stretch_u8(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min-max stretch to 0..255 (rounded), as the published span maps; (u8, lo, hi)."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12:
        return np.zeros(x.shape, np.uint8), lo, hi
    return np.round((x - lo) / (hi - lo) * 255).astype(np.uint8), lo, hi


def span_map(token_maps: np.ndarray, how: str = "mean") -> tuple[np.ndarray, float, float]:
    """(k, gh, gw) float token maps in [0, 1] -> the span's 8-bit map and its float range.

    mean (default, the paper's choice) or max over the span's tokens.
    """
    if how not in ("mean", "max"):
        raise ValueError(f"how must be mean or max, not {how!r}")
    stack = np.asarray(token_maps, dtype=np.float64)
    combined = stack.mean(axis=0) if how == "mean" else stack.max(axis=0)
    return stretch_u8(combined)
