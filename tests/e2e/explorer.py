"""Page operations on the explorer shared by the browser tests, the static-site test and the
benchmark: waiting for a drawn overlay, reading its pixels back, the expected map in Python."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# JS: summary of an overlay canvas read back with getImageData (optionally sampling pixels)
_READ = """([testid, points]) => {
  const c = document.querySelector(`[data-testid="${testid}"]`);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let opaque = 0, sum = [0, 0, 0];
  const alphas = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] === 0) continue;
    opaque++; alphas.add(d[i + 3]);
    sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2];
  }
  const at = (points || []).map(([x, y]) => Array.from(d.slice((y * c.width + x) * 4, (y * c.width + x) * 4 + 4)));
  return { width: c.width, height: c.height, opaque, alphas: [...alphas].slice(0, 8),
    mean: sum.map((s) => (opaque ? s / opaque : 0)), at, drawn: c.dataset.drawn };
}"""


def wait_drawn(page, signature_prefix: str, testid: str = "overlay", timeout: float = 10_000) -> None:
    """Wait until the overlay says it painted something starting with `signature_prefix`
    ("tam span-2 inferno", "none", ...): the view sets data-drawn after putImageData."""
    page.wait_for_function(
        "([t, p]) => (document.querySelector(`[data-testid=\"${t}\"]`)?.dataset.drawn || '').startsWith(p)",
        arg=[testid, signature_prefix], timeout=timeout)


def read_overlay(page, testid: str = "overlay", points=None) -> dict:
    return page.evaluate(_READ, [testid, points or []])


def span_button(page, text: str):
    return page.locator(f'[data-testid="span-button"][aria-label^="{text} ("]')


def expected_map(png: Path, width: int, height: int) -> np.ndarray:
    """The 8-bit grid map upsampled as the metrics do (cv2 INTER_LINEAR), in floats."""
    grid = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


def luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])
