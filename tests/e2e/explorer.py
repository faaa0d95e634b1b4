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


def wait_drawn(page, signature_prefix: str, testid: str = "overlay", timeout: float = 10_000,
               exact: bool = False) -> None:
    """Wait until the overlay says it painted something starting with `signature_prefix`
    ("tam span-2 inferno", "none", ...): the view sets data-drawn after putImageData.
    `exact` for a whole signature ("... tint 0"), which as a prefix would also match the
    drawing before the change ("... tint 0.5")."""
    page.wait_for_function(
        "([t, p, exact]) => { const s = document.querySelector(`[data-testid=\"${t}\"]`)?.dataset.drawn || '';"
        " return exact ? s === p : s.startsWith(p); }",
        arg=[testid, signature_prefix, exact], timeout=timeout)


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


def ramp_alpha(value: float, opacity: float = 0.8, cut: float = 0.0, look: str = "hot") -> float:
    """The overlay alpha (0..255) of an 8-bit map value, as docs/explorer.md states the rule:
    0 below the cut; above it the full opacity (tint) or opacity * t^1.5, t = (v - cut) / (1 - cut)."""
    x = value / 255
    if x < cut:
        return 0.0
    return 255 * opacity * (1.0 if look == "tint" else ((x - cut) / (1 - cut)) ** 1.5)


# JS: line breaks in the caption that came too early: the first unbreakable run of the next line
# (its words up to the first space) would have fitted at the end of the line before it.
EARLY_BREAKS = """() => {
  const cap = document.querySelector('[data-testid="caption"]');
  const text = cap.textContent, right = cap.getBoundingClientRect().right;
  const em = parseFloat(getComputedStyle(cap).fontSize);
  const pieces = [];  // runs of non-space characters within one text node, with their boxes
  const walker = document.createTreeWalker(cap, NodeFilter.SHOW_TEXT);
  let offset = 0;
  for (let node; (node = walker.nextNode()); offset += node.data.length) {
    for (const m of node.data.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      const start = offset + m.index;
      for (const r of range.getClientRects()) {
        if (r.width > 0) pieces.push({ start, glued: start > 0 && !/\\s/.test(text[start - 1]), left: r.left, right: r.right, top: Math.round(r.top) });
      }
    }
  }
  let early = 0, breaks = 0;
  const details = [];
  for (let i = 1; i < pieces.length; i++) {
    if (pieces[i].top <= pieces[i - 1].top + 2) continue;  // same line
    breaks++;
    let j = i;  // the next line's first unbreakable run: pieces glued to each other
    while (j + 1 < pieces.length && pieces[j + 1].glued && pieces[j + 1].top === pieces[i].top) j++;
    const need = pieces[j].right - pieces[i].left, free = right - pieces[i - 1].right;
    if (free > need + 0.6 * em) { early++; details.push(text.slice(pieces[i].start, pieces[j].start + 20)); }
  }
  return { early, breaks, details };
}"""
