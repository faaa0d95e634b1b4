"""Statistics: Holm, Cliff's delta, the JSON interface and the fixture dataset."""

import argparse
import json
import statistics

import numpy as np
import pytest
from scipy import stats as st

from contract.stats import cliffs_delta, compare_groups, compute, describe_values, holm, run
from contract.store import Dataset
from testkit.fixture_dataset import make_dataset
from tests import independent


def test_holm_by_hand():
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_cliffs_delta_from_u():
    a, b = [1, 2, 3], [4, 5, 6]
    u = st.mannwhitneyu(a, b).statistic
    assert cliffs_delta(u, 3, 3) == -1.0
    assert cliffs_delta(st.mannwhitneyu(b, a).statistic, 3, 3) == 1.0


def test_compare_groups_needs_two_groups():
    assert compare_groups({"A": [1.0, 2.0]}) is None
    out = compare_groups({"A": [0.1, 0.2, 0.3], "B": [0.7, 0.8, 0.9], "C": [0.4, 0.5]})
    assert out["kruskal"]["H"] > 0 and len(out["pairwise"]) == 3
    assert all(p["p_holm"] >= p["p"] for p in out["pairwise"])


CATEGORIES = ("CVO", "ICON", "STYLE", "AFFECT", "META")


def test_fixture_spans_are_measured_from_their_maps(tmp_path):
    """The fixture computes its numbers as the pipeline does; here they are derived again from
    its PNGs alone: a span's map is the mean of its tokens' maps stretched to 0..255, and its
    metrics, Otsu threshold and IoU are those of that map (tests/independent.py)."""
    root = make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False)
    measured = {(s["painting"], s["index"]): s for s in independent.dataset_spans(root)}
    ious = []
    for rec in Dataset(root).records():
        folder = root / "paintings" / rec.id
        for span in rec.spans:
            tokens = np.stack([independent.gray(folder / rec.tokens[t].map.png) / 255 for t in span.tokens])
            mean = tokens.mean(axis=0)
            stretched = (mean - mean.min()) / (mean.max() - mean.min()) * 255
            assert np.abs(independent.gray(folder / span.map.png) - stretched).max() <= 0.5 + 1e-9
            assert (span.map.lo, span.map.hi) == pytest.approx((mean.min(), mean.max()))
            want = measured[(rec.id, span.index)]
            assert (span.metrics.entropy, span.metrics.gini, span.metrics.top10_mass) == pytest.approx(
                (want["entropy"], want["gini"], want["top10"]), rel=1e-9)
            assert span.otsu_threshold == want["otsu_threshold"]
            if want["detected"]:
                assert span.sam.iou == pytest.approx(want["iou"], rel=1e-9)
                ious.append(want["iou"])
    assert len(set(ious)) == len(ious) > 1  # the fixture's IoUs differ: a constant would not


def test_fixture_stats_and_json(tmp_path, capsys):
    """stats.json of the fixture against the same figures derived from its files."""
    root = make_dataset(tmp_path / "ds", n_paintings=3, with_stats=False)
    stats = compute(Dataset(root)).model_dump()
    spans = independent.dataset_spans(root)
    assert stats["n_paintings"] == 3 and stats["n_spans"] == len(spans)
    for cat in CATEGORIES:
        mine, got = [s for s in spans if s["category"] == cat], stats[cat]
        assert got["count"] == len(mine)
        for metric in ("entropy", "gini", "top10", "iou"):
            values = sorted(s[metric] for s in mine if s[metric] is not None)
            assert got[f"{metric}_n"] == len(values), (cat, metric)
            assert got[f"{metric}_values"] == pytest.approx(values, abs=6e-5), (cat, metric)  # 4 decimals
            if values:
                q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
                assert (got[f"{metric}_mean"], got[f"{metric}_median"], got[f"{metric}_q1"], got[f"{metric}_q3"]) == \
                    pytest.approx((statistics.fmean(values), median, q1, q3), rel=1e-9), (cat, metric)
        runs, detected = sum(s["sam_run"] for s in mine), sum(s["detected"] for s in mine)
        assert (got["sam_runs"], got["sam_detections"]) == (runs, detected)
        assert got["sam_detection_rate"] == (detected / runs if runs else None)
    h, p = st.kruskal(*[[s["entropy"] for s in spans if s["category"] == c] for c in CATEGORIES])
    assert (stats["tests"]["entropy"]["kruskal"]["H"], stats["tests"]["entropy"]["kruskal"]["p"]) == (
        pytest.approx(h, rel=1e-9), pytest.approx(p, rel=1e-9))
    for field in ("title", "artist"):  # the claims against the annotations, names spelled exactly
        verdicts = [getattr(r.metadata, f"{field}_claimed") == getattr(r.annotations, field)
                    for r in Dataset(root).records()]
        assert (stats["metadata"][field]["correct"], stats["metadata"][field]["graded"]) == (sum(verdicts), len(verdicts))
    assert run(argparse.Namespace(dataset=root, json=True)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((root / "stats.json").read_text())
    assert printed["CVO"]["entropy_mean"] == pytest.approx(stats["CVO"]["entropy_mean"])


def test_stats_hold_one_record_at_a_time(tmp_path):
    """`tamscope stats` reads each record once and keeps only per-span numbers (100,000 records
    held at once filled a 24 GB machine): while it runs, at most the record it reads and the one
    before it are alive."""
    import weakref

    from testkit.replicate import replicate

    class Watched(Dataset):
        most = 0

        def records(self):
            alive = []  # weak references (records are not hashable: no WeakSet)
            for record in super().records():
                alive = [r for r in alive if r() is not None] + [weakref.ref(record)]
                Watched.most = max(Watched.most, len(alive))
                yield record

    stats = compute(Watched(replicate(tmp_path / "many", 24)))
    assert stats.n_paintings == 24
    assert Watched.most <= 2


def test_a_large_category_keeps_1001_order_statistics():
    """Beyond 1,001 spans stats.json keeps order statistics at evenly spaced ranks: the nearest-rank
    quantiles at k/1000 (numpy's `nearest` method, not our index arithmetic), the minimum and the
    maximum among them; the summary numbers stay those of every value, and a value's percentile
    among the kept ones is within 0.1 point of its percentile among all."""
    rng = np.random.default_rng(5)
    values = rng.gamma(2.0, 0.3, size=54_321).tolist()
    got = describe_values(values + [None], "entropy")
    kept = got["entropy_values"]
    xs = np.asarray(values)
    want = np.quantile(xs, np.arange(1001) / 1000, method="nearest")
    assert kept == pytest.approx(want, abs=6e-5)  # stored to 4 decimals
    assert got["entropy_n"] == 54_321 and kept[0] == round(xs.min(), 4) and kept[-1] == round(xs.max(), 4)
    assert got["entropy_median"] == pytest.approx(statistics.median(values))
    assert got["entropy_mean"] == pytest.approx(statistics.fmean(values))

    def rank(v, among):  # the explorer's percentileRank (frontend/js/lib/format.js), exact values
        among = np.asarray(among)
        return 100 * ((among < v).sum() + (among == v).sum() / 2) / among.size

    for v in rng.choice(xs, 200).tolist() + [xs.min(), xs.max(), 0.01, 10.0]:
        assert abs(rank(round(v, 4), np.round(kept, 4)) - rank(v, xs)) <= 0.1 + 100 / xs.size, v


def test_a_small_category_keeps_every_value():
    values = [0.5, 0.1, 0.3] * 333 + [0.2, 0.9]  # 1,001 values: all kept
    got = describe_values(values, "gini")
    assert got["gini_values"] == sorted(values) and got["gini_n"] == 1001
    assert describe_values([], "iou")["iou_values"] == []
