"""Statistics: Holm, Cliff's delta, the JSON interface and the fixture dataset."""

import argparse
import json

import pytest
from scipy import stats as st

from contract.stats import cliffs_delta, compare_groups, compute, holm, run
from contract.store import Dataset
from testkit.fixture_dataset import make_dataset


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


def test_fixture_stats_and_json(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", n_paintings=3, with_stats=False)
    stats = compute(Dataset(root)).model_dump()
    assert stats["n_paintings"] == 3 and stats["CVO"]["count"] == 6
    assert stats["CVO"]["sam_runs"] == 6 and stats["CVO"]["sam_detections"] == 3
    assert stats["metadata"]["title"]["graded"] == 3
    assert run(argparse.Namespace(dataset=root, json=True)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["CVO"]["entropy_mean"] == pytest.approx(stats["CVO"]["entropy_mean"])
    assert "iou_mean" in printed["ICON"] and (root / "stats.json").is_file()
