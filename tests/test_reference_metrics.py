"""Our metrics on the authors' published span maps and SAM 3 masks (30 paintings, 449 spans).

The figures below are what tamscope computes on the sample; docs/metrics.md lists them.
They follow the paper's definitions: normalised spatial entropy over all grid cells of the
8-bit span map (p = map / sum, H / log N); Otsu (cv2) on the map bilinearly resized to the
canvas, mask = value > threshold, IoU against the SAM 3 union mask (alpha > 0). Every
published span counts, including the 35 whose phrase the caption does not contain.
"""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[1]
# category: (spans, mean entropy, mean Otsu-vs-SAM IoU or None, SAM detection rate or None)
EXPECTED = {
    "CVO": (205, 0.9405, 0.2179, 155 / 205),
    "ICON": (30, 0.9506, 0.1940, 22 / 30),
    "STYLE": (111, 0.9591, None, None),
    "AFFECT": (78, 0.9551, None, None),
    "META": (25, 0.9608, None, None),
}


@pytest.fixture(scope="module")
def stats(tamart_dataset):
    out = subprocess.run([sys.executable, "-m", "tamscope.cli", "stats", str(tamart_dataset), "--json"],
                         capture_output=True, check=True, cwd=REPO)
    return orjson.loads(out.stdout)


@pytest.mark.parametrize("category", EXPECTED)
def test_per_category_entropy_and_iou(stats, category):
    count, entropy, iou, rate = EXPECTED[category]
    got = stats[category]
    assert got["count"] == count
    assert got["entropy_mean"] == pytest.approx(entropy, abs=1e-3)
    assert (got["iou_mean"] is None) == (iou is None)
    if iou is not None:
        assert got["iou_mean"] == pytest.approx(iou, abs=1e-3)
        assert got["sam_detection_rate"] == pytest.approx(rate, abs=1e-3)


def test_paper_pattern_objects_localise_more_than_style_and_affect(stats):
    """The paper's finding holds on the sample: CVO and ICON maps have lower entropy."""
    assert stats["CVO"]["entropy_mean"] < stats["STYLE"]["entropy_mean"]
    assert stats["CVO"]["entropy_mean"] < stats["AFFECT"]["entropy_mean"]
    assert stats["ICON"]["entropy_mean"] < stats["STYLE"]["entropy_mean"]
    kw = stats["tests"]["entropy"]["kruskal"]
    assert kw["p"] < 1e-6 and kw["epsilon_squared"] == pytest.approx(0.0895, abs=1e-3)


def test_metadata_accuracy_of_the_sample(stats):
    artist, title = stats["metadata"]["artist"], stats["metadata"]["title"]
    assert (artist["correct"], artist["graded"], artist["accuracy"]) == (6, 7, pytest.approx(6 / 7))
    assert (title["correct"], title["graded"], title["accuracy"]) == (6, 10, pytest.approx(0.6))
