"""The dashboard's faithfulness statistics: means with bootstrap intervals, and the entropy
question as a rank correlation, checked against values computed independently."""

from __future__ import annotations

import numpy as np
import pytest

from contract.faithstats import faithfulness_stats, mean_ci, spearman_ci
from contract.schema import (
    Category,
    MapRef,
    MethodResult,
    PaintingRecord,
    Span,
    SpanFaithfulness,
    SpanMetrics,
)


def record(areas: list[tuple[str, float, float, float]]) -> PaintingRecord:
    """areas: (category, entropy, deletion area, insertion area) per span."""
    spans = []
    for i, (cat, entropy, d, ins) in enumerate(areas):
        result = MethodResult(map=MapRef(png=f"methods/logit/{i}.png", lo=0, hi=1), tokens=[0],
                              deletion=[1, d, 0], insertion=[0, ins, 1], deletion_area=d, insertion_area=ins)
        spans.append(Span(index=i, text="x", category=Category(cat), metrics=SpanMetrics(entropy=entropy),
                          faithfulness=SpanFaithfulness(score_original=-1, score_baseline=-3, steps=2,
                                                        methods={"logit": result})))
    return PaintingRecord(id="p", spans=spans)


def test_means_per_method_and_category_with_intervals():
    rows = [("CVO", 0.1 * i, 0.1 * i, 1 - 0.1 * i) for i in range(1, 6)] + [("STYLE", 0.6, 0.7, 0.2)]
    stats = faithfulness_stats([record(rows)])
    cvo = stats["table"]["logit"]["CVO"]["deletion"]
    assert cvo["n"] == 5 and cvo["mean"] == pytest.approx(0.3)
    assert cvo["lo"] < 0.3 < cvo["hi"] and cvo["lo"] >= 0.1 and cvo["hi"] <= 0.5  # within the data's range
    assert stats["table"]["logit"]["STYLE"]["deletion"] == {"n": 1, "mean": 0.7, "lo": None, "hi": None}
    assert stats["table"]["logit"]["all"]["insertion"]["mean"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6 + 0.5 + 0.2) / 6)
    # entropy rises with the deletion area in every span: rho = 1; falls with insertion: -1
    assert stats["entropy"]["logit"]["deletion"]["rho"] == pytest.approx(1.0)
    assert stats["entropy"]["logit"]["insertion"]["rho"] == pytest.approx(-1.0)


def test_spearman_against_the_textbook_formula():
    x, y = [1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]
    d2 = sum((a - b) ** 2 for a, b in zip(x, y, strict=True))  # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1))
    out = spearman_ci(x, y)
    assert out["rho"] == pytest.approx(1 - 6 * d2 / (6 * 35))
    assert out["lo"] <= out["rho"] <= out["hi"]
    assert spearman_ci([1, 2], [2, 1]) is None and spearman_ci([1, 1, 1], [1, 2, 3]) is None


def test_no_faithfulness_data_no_section():
    assert faithfulness_stats([PaintingRecord(id="p")]) is None
    assert mean_ci([0.5, 0.5, 0.5])["lo"] is None  # no spread, no interval
    assert np.isnan(np.nan) and mean_ci([])["mean"] is None
