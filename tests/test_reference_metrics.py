"""Our statistics of the authors' published span maps and SAM 3 masks (30 paintings), against
the same figures derived from their raw files by independent code (tests/independent.py).

`tamscope stats` reads the imported dataset; the expected values read the project page's JSON
and mask PNGs directly: base64 span maps on the vision grid, SAM 3 masks as RGBA (alpha > 0),
their own metadata verdicts. Every published span counts, including those whose phrase the
caption does not contain. Definitions: docs/metrics.md.
"""

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy import stats as st

from tests import independent

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("CVO", "ICON", "STYLE", "AFFECT", "META")


@pytest.fixture(scope="module")
def published(tamart_sample) -> dict:
    """Per category, from the raw files: every span's entropy, Gini and top-10% mass; SAM 3 runs
    (CVO and ICON spans) and, for those with a mask, the IoU of the Otsu mask with it."""
    per: dict = defaultdict(lambda: defaultdict(list))
    for data in independent.published_paintings(tamart_sample):
        for span in data["spans"]:
            grid = independent.published_map(span["map"], data["grid_h"], data["grid_w"])
            values = per[span["cat"]]
            values["entropy"].append(independent.entropy(grid))
            values["gini"].append(independent.gini(grid))
            values["top10"].append(independent.top10_mass(grid))
            if span["cat"] in ("CVO", "ICON"):
                values["sam_runs"].append(span.get("sam"))
                if span.get("sam"):
                    _, mask = independent.otsu_mask(grid, data["w"], data["h"])
                    sam = independent.published_mask(tamart_sample / "assets/masks" / span["sam"])
                    values["iou"].append(independent.iou(mask, sam))
    return per


@pytest.fixture(scope="module")
def stats(tamart_dataset):
    out = subprocess.run([sys.executable, "-m", "tamscope.cli", "stats", str(tamart_dataset), "--json"],
                         capture_output=True, check=True, cwd=REPO)
    return orjson.loads(out.stdout)


def test_every_published_category_is_counted(stats, published):
    assert set(published) == set(CATEGORIES)
    assert stats["n_spans"] == sum(len(published[c]["entropy"]) for c in CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_per_category_localisation(stats, published, category):
    got, want = stats[category], published[category]
    assert got["count"] == len(want["entropy"])
    for metric in ("entropy", "gini", "top10"):
        values = [v for v in want[metric] if v is not None]
        assert got[f"{metric}_n"] == len(values), metric
        assert got[f"{metric}_mean"] == pytest.approx(np.mean(values), rel=1e-9), metric
        assert got[f"{metric}_median"] == pytest.approx(np.median(values), rel=1e-9), metric
        assert got[f"{metric}_values"] == pytest.approx(sorted(values), abs=6e-5), metric  # stored to 4 decimals


@pytest.mark.parametrize("category", ["CVO", "ICON"])
def test_sam_detection_and_iou(stats, published, category):
    got, want = stats[category], published[category]
    runs, detected = len(want["sam_runs"]), sum(bool(s) for s in want["sam_runs"])
    assert (got["sam_runs"], got["sam_detections"]) == (runs, detected)
    assert got["sam_detection_rate"] == pytest.approx(detected / runs)
    ious = sorted(v for v in want["iou"] if v is not None)
    assert got["iou_n"] == len(ious) == detected
    assert got["iou_values"] == pytest.approx(ious, abs=6e-5)  # stored to 4 decimals
    assert got["iou_mean"] == pytest.approx(np.mean(ious), rel=1e-9)


def test_every_span_is_measured_as_defined(tamart_dataset, tamart_sample):
    """Span by span, the imported record's metrics, Otsu threshold and IoU are those of its
    published map and mask."""
    from contract.store import Dataset

    ds = Dataset(tamart_dataset)
    checked = 0
    for data in independent.published_paintings(tamart_sample):
        record = ds.record(data["stem"])
        assert len(record.spans) == len(data["spans"])
        for span, raw in zip(record.spans, data["spans"], strict=True):
            grid = independent.published_map(raw["map"], data["grid_h"], data["grid_w"])
            m = span.metrics
            assert (m.entropy, m.gini, m.top10_mass) == pytest.approx(
                (independent.entropy(grid), independent.gini(grid), independent.top10_mass(grid)), rel=1e-9)
            threshold, mask = independent.otsu_mask(grid, data["w"], data["h"])
            assert span.otsu_threshold == threshold, (data["stem"], span.index)
            if raw.get("sam") and raw["cat"] in ("CVO", "ICON"):
                sam = independent.published_mask(tamart_sample / "assets/masks" / raw["sam"])
                assert span.sam.iou == pytest.approx(independent.iou(mask, sam), rel=1e-9)
                checked += 1
    assert checked > 0


def test_no_iou_outside_segmentable_categories(stats):
    for category in ("STYLE", "AFFECT", "META"):
        assert stats[category]["iou_mean"] is None and stats[category]["sam_runs"] == 0


def test_categories_differ_as_the_paper_found(stats, published):
    """Kruskal-Wallis across the categories on the independently computed entropies; and the
    paper's finding: CVO and ICON maps are more localised (lower entropy) than STYLE and AFFECT."""
    groups = [[v for v in published[c]["entropy"] if v is not None] for c in CATEGORIES]
    h, p = st.kruskal(*groups)
    n = sum(map(len, groups))
    kw = stats["tests"]["entropy"]["kruskal"]
    assert (kw["H"], kw["p"], kw["n"]) == (pytest.approx(h, rel=1e-6), pytest.approx(p, rel=1e-5), n)
    assert kw["epsilon_squared"] == pytest.approx(independent.epsilon_squared(h, n), rel=1e-6)
    assert kw["p"] < 1e-6
    assert stats["CVO"]["entropy_mean"] < stats["STYLE"]["entropy_mean"]
    assert stats["CVO"]["entropy_mean"] < stats["AFFECT"]["entropy_mean"]
    assert stats["ICON"]["entropy_mean"] < stats["STYLE"]["entropy_mean"]


def test_metadata_accuracy_is_their_verdicts(stats, tamart_sample):
    """The importer keeps the authors' verdicts: accuracy counts them as published."""
    metas = [data.get("meta") or {} for data in independent.published_paintings(tamart_sample)]
    for field in ("title", "artist"):
        verdicts = [m[f"{field}_correct"] for m in metas if m.get(f"{field}_correct") is not None]
        got = stats["metadata"][field]
        assert (got["correct"], got["graded"]) == (sum(verdicts), len(verdicts)), field
        assert got["accuracy"] == pytest.approx(sum(verdicts) / len(verdicts))


def test_docs_table_shows_these_figures(published):
    """docs/metrics.md's table of the published sample agrees with the independent figures."""
    doc = (REPO / "docs" / "metrics.md").read_text()
    for category in CATEGORIES:
        want = published[category]
        row = re.search(rf"^\| {category} \| (.+) \|$", doc, flags=re.M)
        assert row, f"docs/metrics.md has no row for {category}"
        cells = [c.strip() for c in row.group(1).split("|")]
        numbers = [float(x) for x in re.findall(r"\d+\.\d+|\d+", " ".join(cells[:4]))]
        entropy = [v for v in want["entropy"] if v is not None]
        assert numbers == pytest.approx([len(want["entropy"]), np.mean(entropy), np.median(entropy),
                                         np.mean(want["gini"]), np.mean(want["top10"])], abs=6e-4), category
        if want["sam_runs"]:
            ious = [v for v in want["iou"] if v is not None]
            iou_mean, iou_median = map(float, re.findall(r"\d+\.\d+", cells[4]))
            assert (iou_mean, iou_median) == (pytest.approx(np.mean(ious), abs=6e-5),
                                              pytest.approx(np.median(ious), abs=6e-4)), category
            assert cells[5].startswith(f"{len(ious)} / {len(want['sam_runs'])} "), category
        else:
            assert cells[4] == cells[5] == "–", category


def test_docs_show_where_the_phrases_land(tamart_sample):
    """docs/metrics.md's placement figures ("now" column, the similarities, the phrases left out)
    are those tests/independent.py derives from the raw captions and phrases."""
    kinds, similarities, total = Counter(), [], 0
    for data in independent.published_paintings(tamart_sample):
        words = [span["word"] for span in data["spans"]]
        for where in independent.placements(data["caption"], words, overlap=True):
            kinds[where["match"] if where else "not placed"] += 1
            if where and where["match"] == "approximate":
                similarities.append(where["similarity"])
            total += 1
    doc = (REPO / "docs" / "metrics.md").read_text()
    assert f"| published phrases ({total}) | now | before |" in doc
    for kind in ("exact", "repaired", "approximate", "not placed"):
        assert re.search(rf"^\| {kind} \| {kinds[kind]} \|", doc, flags=re.M), kind
    assert "| starting or ending inside a word | 0 |" in doc  # test_importer checks every span for it
    flat = " ".join(doc.split())
    assert (f"lowest {min(similarities):.3f}" in flat and f"median {np.median(similarities):.3f}" in flat
            and f"highest {max(similarities):.3f}" in flat)
    assert f"The {kinds['not placed']} left out" in flat
    assert f"including the {kinds['not placed']} whose phrase the caption does not contain" in flat
    placed = total - kinds["not placed"]
    assert (f"places {placed} of the {total} phrases in their captions ({kinds['exact']} exact, "
            f"{kinds['repaired']} repaired, {kinds['approximate']} approximate" in flat)
