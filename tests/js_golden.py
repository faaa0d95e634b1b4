"""Golden outputs of OpenCV for the explorer's JS ports (frontend/js/lib/otsu.js, upsample.js).

`python -m tests.js_golden` writes build/golden-cv2.json (`make test-js` does it before running
node), and node's tests check the JS against it (frontend/tests/lib.test.mjs). It is computed by
cv2 on every run and never committed, so it can neither rot nor be edited by hand.

Cases (seeded, deterministic):
- otsu: uint8 arrays of varied shape (bimodal, uniform, skewed, constant, two values, tiny,
  and real-looking maps: smooth blobs resized to a canvas with cv2 like the metrics do);
  the answer is cv2.threshold(..., THRESH_BINARY + THRESH_OTSU)[0].
- resize: float32 grids resized with cv2.resize(INTER_LINEAR) up and by non-integer ratios.
- mask: Otsu masks of the metric pipeline (cv2.resize of the uint8 map, then Otsu): the JS
  side reproduces them from the grid alone (bilinear in floats, rounded); the count of pixels
  that differ from cv2's fixed-point resize is recorded so the test bounds it.
- contours: binary masks (random noise, rings with holes, thin lines, single pixels, Otsu
  regions of smooth maps at canvas size) and cv2.findContours(RETR_CCOMP): every border as its
  pixel chain (CHAIN_APPROX_NONE) and cut to its turning points (CHAIN_APPROX_SIMPLE), and
  whether it bounds a hole (it has a parent).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "build" / "golden-cv2.json"


def otsu(values: np.ndarray) -> int:
    return int(cv2.threshold(values.reshape(1, -1).astype(np.uint8), 0, 255,
                             cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])


def blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w))
    for _ in range(rng.integers(1, 4)):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.8, 3)
        m += rng.uniform(0.3, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    m += rng.uniform(0, 0.2, size=(h, w))
    return np.floor(255 * (m - m.min()) / (m.max() - m.min())).astype(np.uint8)


def build() -> dict:
    rng = np.random.default_rng(20260101)
    cases = []
    cases.append(np.r_[np.full(60, 20), np.full(40, 200)])
    cases.append(np.full(50, 7))
    cases.append(np.array([0, 255] * 10))
    cases.append(np.array([3]))
    cases.append(np.array([10, 11]))
    for _ in range(6):
        cases.append(rng.integers(0, 256, size=rng.integers(20, 800)))
    for _ in range(6):
        n = rng.integers(100, 1500)
        a = rng.normal(rng.uniform(20, 100), rng.uniform(5, 30), size=n // 2)
        b = rng.normal(rng.uniform(120, 230), rng.uniform(5, 30), size=n - n // 2)
        cases.append(np.clip(np.r_[a, b], 0, 255).round())
    for _ in range(4):
        cases.append(np.clip(rng.exponential(rng.uniform(5, 40), size=rng.integers(50, 900)), 0, 255).round())
    maps = []
    for _ in range(8):
        gh, gw = int(rng.integers(3, 12)), int(rng.integers(3, 12))
        grid = blob(rng, gh, gw)
        W, H = int(rng.integers(gw, 90)), int(rng.integers(gh, 70))
        resized = cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR)
        cases.append(resized.ravel())
        t = otsu(resized)
        maps.append({"grid": grid.ravel().tolist(), "gw": gw, "gh": gh, "W": W, "H": H, "threshold": t,
                     "mask_inside": int((resized > t).sum())})
    otsu_cases = [{"values": c.astype(np.uint8).tolist(), "threshold": otsu(c)} for c in cases]
    resize_cases = []
    for gh, gw, H, W in [(2, 2, 4, 4), (3, 5, 7, 11), (6, 8, 45, 60), (4, 3, 13, 10), (5, 5, 5, 5), (1, 4, 3, 9),
                         (32, 39, 40, 52)]:
        grid = rng.uniform(0, 255, size=(gh, gw)).astype(np.float32)
        out = cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR)
        resize_cases.append({"grid": [round(float(v), 4) for v in grid.ravel()], "gw": gw, "gh": gh, "W": W, "H": H,
                             "out": [round(float(v), 4) for v in out.ravel()]})
    return {"generator": "python -m tests.js_golden", "opencv": cv2.__version__,
            "otsu": otsu_cases, "resize": resize_cases, "maps": maps, "contours": contour_cases(rng)}


def contours(mask: np.ndarray) -> dict:
    found, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    simple, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)  # same order
    return {"W": int(mask.shape[1]), "H": int(mask.shape[0]), "mask": mask.astype(np.uint8).ravel().tolist(),
            "contours": [{"points": c.reshape(-1).tolist(), "simple": simple[k].reshape(-1).tolist(),
                          "hole": bool(hierarchy[0][k][3] >= 0)} for k, c in enumerate(found)]}


def contour_cases(rng: np.random.Generator) -> list[dict]:
    masks = [np.ones((1, 1)), np.pad(np.ones((1, 1)), 2), np.pad(np.ones((3, 3)), 1), np.eye(6), np.zeros((4, 5)),
             np.ones((5, 7))]
    ring = np.zeros((9, 11))
    ring[1:8, 1:10] = 1
    ring[3:6, 4:7] = 0  # a hole
    ring[4, 5] = 1  # an island inside the hole
    masks.append(ring)
    for _ in range(14):
        h, w = rng.integers(3, 30, 2)
        masks.append(rng.random((h, w)) < rng.uniform(0.2, 0.7))
    for _ in range(4):  # Otsu regions of smooth maps at canvas size, as the explorer draws them
        gh, gw = int(rng.integers(4, 12)), int(rng.integers(4, 12))
        resized = cv2.resize(blob(rng, gh, gw), (int(rng.integers(60, 160)), int(rng.integers(50, 120))),
                             interpolation=cv2.INTER_LINEAR)
        masks.append(resized > otsu(resized))
    return [contours(m) for m in masks]


def main() -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(build(), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
