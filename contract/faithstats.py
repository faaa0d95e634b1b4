"""Dataset statistics of the faithfulness stage (stats.json's `faithfulness`, docs/metrics.md).

- `table`: per method and category, the deletion and insertion areas of the spans where they
  are defined: n, mean and a 95% bootstrap confidence interval of the mean (scipy.stats.bootstrap,
  percentile method, 2000 resamples, fixed seed so stats.json is reproducible; no interval for
  fewer than 3 spans), and the same over all categories (`all`).
- `entropy`: the paper's question, does a more concentrated map go with a more faithful one?
  Per method, Spearman's rank correlation between the span's TAM entropy (`metrics.entropy`,
  the map the explorer shows) and the method's deletion area, and its insertion area, with a
  95% bootstrap confidence interval (pairs resampled) and the two-sided p-value. A positive
  rho with deletion (low entropy, low deletion area) and a negative one with insertion mean
  "yes".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from scipy import stats as st

from contract.schema import PaintingRecord

RESAMPLES = 2000
SEED = 0
MIN_CI = 3  # spans needed for a confidence interval


def mean_ci(values: list[float]) -> dict:
    x = np.asarray(values, dtype=np.float64)
    out = {"n": int(x.size), "mean": float(x.mean()) if x.size else None, "lo": None, "hi": None}
    if x.size >= MIN_CI and np.ptp(x) > 0:
        ci = st.bootstrap((x,), np.mean, n_resamples=RESAMPLES, method="percentile",
                          random_state=np.random.default_rng(SEED)).confidence_interval
        out["lo"], out["hi"] = float(ci.low), float(ci.high)
    return out


def spearman_ci(x: list[float], y: list[float]) -> dict | None:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.size < MIN_CI or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    res = st.spearmanr(a, b)
    out = {"n": int(a.size), "rho": float(res.statistic), "p": float(res.pvalue), "lo": None, "hi": None}

    def rho(i, j):
        return st.spearmanr(i, j).statistic

    ci = st.bootstrap((a, b), rho, paired=True, vectorized=False, n_resamples=RESAMPLES, method="percentile",
                      random_state=np.random.default_rng(SEED)).confidence_interval
    if np.isfinite([ci.low, ci.high]).all():
        out["lo"], out["hi"] = float(ci.low), float(ci.high)
    return out


class FaithfulnessStats:
    """The `faithfulness` statistics, gathered one record at a time (contract.stats reads each
    record once)."""

    def __init__(self):
        self.areas: dict = defaultdict(lambda: defaultdict(lambda: {"deletion": [], "insertion": []}))
        self.pairs: dict = defaultdict(lambda: {"entropy": [], "deletion": [], "insertion": []})
        self.steps: set[int] = set()

    def add(self, record: PaintingRecord) -> None:
        for span in record.spans:
            f = span.faithfulness
            if f is None:
                continue
            self.steps.add(f.steps)
            for method, result in f.methods.items():
                if result.deletion_area is None:
                    continue
                for cat in (span.category.value, "all"):
                    self.areas[method][cat]["deletion"].append(result.deletion_area)
                    self.areas[method][cat]["insertion"].append(result.insertion_area)
                if span.metrics is not None and span.metrics.entropy is not None:
                    self.pairs[method]["entropy"].append(span.metrics.entropy)
                    self.pairs[method]["deletion"].append(result.deletion_area)
                    self.pairs[method]["insertion"].append(result.insertion_area)

    def result(self) -> dict | None:
        """None when no record has faithfulness data."""
        if not self.areas:
            return None
        table = {method: {cat: {kind: mean_ci(v) for kind, v in by_kind.items()} for cat, by_kind in cats.items()}
                 for method, cats in self.areas.items()}
        entropy = {method: {kind: spearman_ci(p["entropy"], p[kind]) for kind in ("deletion", "insertion")}
                   for method, p in self.pairs.items()}
        return {"steps": sorted(self.steps), "table": table, "entropy": entropy}


def faithfulness_stats(records: Iterable[PaintingRecord]) -> dict | None:
    """FaithfulnessStats over RECORDS."""
    acc = FaithfulnessStats()
    for record in records:
        acc.add(record)
    return acc.result()
