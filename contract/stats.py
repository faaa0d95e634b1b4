"""`tamscope stats DATASET [--json]`: the dashboard's statistics, written to stats.json.

Per category (top-level keys CVO, ICON, STYLE, AFFECT, META): span count; for entropy, Gini,
top-10% mass and IoU (IoU over spans SAM 3 detected): n, mean, median, q1, q3, min, max and
the sorted values (so the explorer can place a span in its category's distribution); SAM 3
runs, detections and detection rate; example spans (lowest, median, highest entropy; `iou_examples`
likewise for IoU; `sam_missed_examples`: up to 3 spans SAM 3 found nothing for); visual
reliance of the span (mean over its tokens, `reliance_*`) and the share of spans with at least
one visually relevant token (`visual_rate`).
Tests (scipy.stats): Kruskal-Wallis across categories with epsilon squared
(H / ((n^2 - 1) / (n + 1)), Tomczak & Tomczak 2014), pairwise two-sided Mann-Whitney U with
Holm's correction and Cliff's delta (2U / (n1 n2) - 1); for entropy and top-10% mass, and
IoU between CVO and ICON. Metadata: title and artist accuracy with counts and up to 3 example
painting ids graded correct and wrong (`examples`). Span matching: how
many phrases the span classifier proposed and how many were found in the caption (exactly,
repaired or approximately), summed over the records (`span_matching`). After the optional
faithfulness stage: deletion/insertion areas per method and category with confidence intervals,
and their rank correlation with entropy (`faithfulness`, contract/faithstats.py).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson
from scipy import stats as st

from contract.faithstats import FaithfulnessStats
from contract.schema import Category, DatasetStats, PaintingRecord
from contract.store import Dataset

METRICS = ("entropy", "gini", "top10", "iou", "reliance")
MATCH_KEYS = ("proposed", "exact", "repaired", "approximate", "rejected")  # approximate: 0 in older records


class SpanMatching:
    """Phrases the span classifier proposed and matched, summed over the records' provenance, one
    record at a time (`tamscope stats` reads 100,000 records once and keeps none)."""

    def __init__(self):
        self.totals = dict.fromkeys(MATCH_KEYS, 0) | {"paintings": 0}

    def add(self, record: PaintingRecord) -> None:
        counts = record.provenance.get("span_classifier", {}).get("counts")
        if counts:
            self.totals["paintings"] += 1
            for key in MATCH_KEYS:
                self.totals[key] += int(counts.get(key, 0))

    def result(self) -> dict:
        totals = dict(self.totals)
        matched = totals["exact"] + totals["repaired"] + totals["approximate"]
        totals["match_rate"] = matched / totals["proposed"] if totals["proposed"] else None
        return totals


def span_matching(records: Iterable[PaintingRecord]) -> dict:
    """SpanMatching over RECORDS."""
    acc = SpanMatching()
    for record in records:
        acc.add(record)
    return acc.result()


# stats.json keeps at most this many of a category's values per metric: every value up to it,
# beyond it the order statistics at evenly spaced ranks (the minimum, ..., the maximum). The
# explorer places a span among them (its percentile within 0.1 point) and draws them; all 1.6
# million phrases of 100,000 paintings made a stats.json of tens of MB fetched whole.
KEPT_VALUES = 1001


def kept_values(xs: np.ndarray) -> np.ndarray:
    """xs (sorted) itself if it has at most KEPT_VALUES values, else KEPT_VALUES of its order
    statistics at evenly spaced ranks: xs[round(k (n - 1) / (KEPT_VALUES - 1))], k = 0 .. KEPT_VALUES - 1."""
    if xs.size <= KEPT_VALUES:
        return xs
    return xs[np.rint(np.linspace(0, xs.size - 1, KEPT_VALUES)).astype(np.int64)]


def describe_values(values: list[float], prefix: str) -> dict:
    xs = np.sort(np.asarray([v for v in values if v is not None], dtype=float))
    out: dict = {f"{prefix}_n": int(xs.size)}
    if xs.size == 0:
        out.update({f"{prefix}_{k}": None for k in ("mean", "median", "q1", "q3", "min", "max")})
        out[f"{prefix}_values"] = []
        return out
    q1, med, q3 = np.quantile(xs, [0.25, 0.5, 0.75])
    out.update({f"{prefix}_mean": float(xs.mean()), f"{prefix}_median": float(med), f"{prefix}_q1": float(q1),
                f"{prefix}_q3": float(q3), f"{prefix}_min": float(xs[0]), f"{prefix}_max": float(xs[-1]),
                f"{prefix}_values": [round(float(x), 4) for x in kept_values(xs)]})
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def cliffs_delta(u: float, n1: int, n2: int) -> float:
    """From Mann-Whitney's U of the first sample: P(x > y) - P(x < y)."""
    return 2 * u / (n1 * n2) - 1


def compare_groups(groups: dict[str, list[float]]) -> dict | None:
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if len(groups) < 2:
        return None
    names = list(groups)
    out: dict = {"groups": {k: len(v) for k, v in groups.items()}}
    samples = list(groups.values())
    n = sum(len(v) for v in samples)
    with np.errstate(all="ignore"):
        try:
            h, p = st.kruskal(*samples)
        except ValueError:  # every value identical: no ranks to compare
            h, p = float("nan"), float("nan")
    out["kruskal"] = ({"H": float(h), "p": float(p), "n": n, "epsilon_squared": float(h / ((n**2 - 1) / (n + 1)))}
                      if np.isfinite(h) else None)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            res = st.mannwhitneyu(groups[a], groups[b], alternative="two-sided")
            pairs.append({"a": a, "b": b, "U": float(res.statistic), "p": float(res.pvalue),
                          "cliffs_delta": cliffs_delta(float(res.statistic), len(groups[a]), len(groups[b]))})
    for pair, adj in zip(pairs, holm([p["p"] for p in pairs]), strict=True):
        pair["p_holm"] = adj
    out["pairwise"] = pairs
    return out


def lowest_median_highest(found: list[tuple], metric: str) -> list[dict]:
    """The spans of lowest, median and highest METRIC among (value, painting, span, text) tuples
    (ties in the order found)."""
    ranked = sorted(found, key=lambda s: s[0])
    picked = [ranked[i] for i in sorted({0, len(ranked) // 2, len(ranked) - 1})] if ranked else []
    return [{"painting": p, "span": i, "text": t, metric: v} for v, p, i, t in picked]


def compute(dataset: Dataset) -> DatasetStats:
    values: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    spans_of: dict[str, list[tuple]] = defaultdict(list)  # (entropy, painting, span, text)
    sam_runs, sam_hits = defaultdict(int), defaultdict(int)
    meta = {"title": [0, 0], "artist": [0, 0]}  # correct, graded
    iou_of, missed_of = defaultdict(list), defaultdict(list)  # iou_of: (IoU, painting, span, text)
    meta_examples = {k: {"correct": [], "wrong": []} for k in meta}  # up to 3 painting ids each
    n_paintings = n_spans = 0
    matching, faithfulness = SpanMatching(), FaithfulnessStats()
    # one pass, one record in memory at a time (100,000 records held at once filled 24 GB): per
    # span only its numbers, and the tuples the examples are picked from
    for record in dataset.records():
        n_paintings += 1
        matching.add(record)
        faithfulness.add(record)
        for span in record.spans:
            n_spans += 1
            cat, m = span.category.value, span.metrics
            if m is not None:
                values[cat]["entropy"].append(m.entropy)
                values[cat]["gini"].append(m.gini)
                values[cat]["top10"].append(m.top10_mass)
                if m.entropy is not None:
                    spans_of[cat].append((m.entropy, record.id, span.index, span.text))
            reliance = [record.tokens[t].reliance for t in span.tokens if record.tokens[t].reliance is not None]
            if reliance:
                values[cat]["reliance"].append(float(np.mean(reliance)))
                values[cat]["_visual"].append(any(record.tokens[t].visual for t in span.tokens))
            if span.sam is not None:
                sam_runs[cat] += 1
                if span.sam.mask is not None:
                    sam_hits[cat] += 1
                    values[cat]["iou"].append(span.sam.iou)
                    if span.sam.iou is not None:  # explorer: the IoU chart links to these spans
                        iou_of[cat].append((span.sam.iou, record.id, span.index, span.text))
                elif len(missed_of[cat]) < 3:
                    missed_of[cat].append({"painting": record.id, "span": span.index, "text": span.text})
            values[cat]["_count"].append(1)
        if record.metadata is not None:
            for key, verdict in (("title", record.metadata.title_correct), ("artist", record.metadata.artist_correct)):
                if verdict is not None:
                    meta[key][1] += 1
                    meta[key][0] += int(verdict)
                    picked = meta_examples[key]["correct" if verdict else "wrong"]
                    if len(picked) < 3:
                        picked.append(record.id)
    out: dict = {"n_paintings": n_paintings, "n_spans": n_spans}
    for cat in (c.value for c in Category):
        if cat not in values:
            continue
        entry: dict = {"count": len(values[cat]["_count"])}
        for metric in METRICS:
            entry.update(describe_values(values[cat][metric], metric))
        visual = values[cat]["_visual"]
        entry["visual_rate"] = sum(visual) / len(visual) if visual else None
        entry.update({"sam_runs": sam_runs[cat], "sam_detections": sam_hits[cat],
                      "sam_detection_rate": sam_hits[cat] / sam_runs[cat] if sam_runs[cat] else None})
        entry["examples"] = lowest_median_highest(spans_of[cat], "entropy")
        entry["iou_examples"] = lowest_median_highest(iou_of[cat], "iou")
        entry["sam_missed_examples"] = missed_of[cat]
        out[cat] = entry
    clean = lambda metric: {c: [v for v in values[c][metric] if v is not None] for c in values}  # noqa: E731
    tests = {"entropy": compare_groups(clean("entropy")), "top10": compare_groups(clean("top10"))}
    iou_groups = {c: v for c, v in clean("iou").items() if c in ("CVO", "ICON")}
    tests["iou"] = compare_groups(iou_groups)
    out["tests"] = {k: v for k, v in tests.items() if v is not None}
    out["metadata"] = {k: {"correct": c, "graded": g, "accuracy": c / g if g else None, "examples": meta_examples[k]}
                       for k, (c, g) in meta.items()}
    out["span_matching"] = matching.result()
    faithful = faithfulness.result()
    if faithful is not None:
        out["faithfulness"] = faithful
    return DatasetStats.model_validate(out)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")


def table(stats: dict) -> str:
    f = lambda x: "  n/a" if x is None else f"{x:5.3f}"  # noqa: E731
    lines = [f"{stats['n_paintings']} paintings, {stats['n_spans']} spans",
             "category  spans  entropy  top-10%   IoU   SAM detections"]
    for cat in (c.value for c in Category):
        if cat in stats:
            s = stats[cat]
            det = f"{s['sam_detections']}/{s['sam_runs']}" if s["sam_runs"] else "-"
            lines.append(f"{cat:<8} {s['count']:6d}    {f(s['entropy_mean'])}    {f(s['top10_mean'])}  "
                         f"{f(s['iou_mean'])}   {det}")
    for key in ("title", "artist"):
        m = stats["metadata"][key]
        if m["graded"]:
            lines.append(f"{key} right: {m['correct']}/{m['graded']} ({100 * m['accuracy']:.0f}%)")
    sm = stats.get("span_matching") or {}
    if sm.get("proposed"):
        found = sm["exact"] + sm["repaired"] + sm.get("approximate", 0)
        lines.append(f"span matching: {found}/{sm['proposed']} proposed phrases found in the caption "
                     f"({100 * sm['match_rate']:.0f}%; {sm['repaired']} repaired, {sm.get('approximate', 0)} approximate)")
    k = stats["tests"].get("entropy", {}).get("kruskal") if stats["tests"].get("entropy") else None
    if k:
        lines.append(f"entropy across categories: Kruskal-Wallis H={k['H']:.1f}, p={k['p']:.2g}, "
                     f"epsilon^2={k['epsilon_squared']:.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    stats = compute(dataset)
    dataset.save_stats(stats)
    from contract.index import ensure_index  # the statistics changed the content version: re-index

    ensure_index(dataset.root)
    data = stats.model_dump(mode="json")
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif not getattr(args, "quiet", False):
        print(table(data))
    return 0
