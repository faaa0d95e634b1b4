"""Faithfulness data added by hand to a fixture dataset (testkit.fixture_dataset), for the server,
site and browser tests: every span gets a `logit` map hot on its left half and an `igos` map hot
on its right half, with curves whose areas are known (docs/faithfulness.md); the first
TOKENS_WITH_CURVES tokens of every painting get per-token curves (`--per-token`)."""

from __future__ import annotations

import argparse

import numpy as np

from contract.commit import commit_painting
from contract.schema import MapRef, MethodResult, SpanFaithfulness, TokenFaithfulness
from contract.store import Dataset, encode_png

# method -> (deletion curve, insertion curve), 3 steps: trapezoid areas by hand
# logit: (1 + 0.4) / 2 / 3 + (0.4 + 0.1) / 2 / 3 + (0.1 + 0) / 2 / 3 = 1 / 3; insertion 0.7
# igos: deletion 0.6, insertion 0.3667
CURVES = {"logit": ([1, 0.4, 0.1, 0], [0, 0.7, 0.9, 1]), "igos": ([1, 0.8, 0.5, 0], [0, 0.2, 0.4, 1])}
# a token's curves, 3 steps: deletion (1.2 + 0.3 + 0.1) / 6 = 0.2667, insertion (0.5 + 1.3 + 1.8) / 6 = 0.6
TOKEN_CURVES = ([1, 0.2, 0.1, 0], [0, 0.5, 0.8, 1])
TOKENS_WITH_CURVES = 3


def with_faithfulness(root):
    """Every span of every painting gets `logit` (left half hot) and `igos` (right half hot) maps
    and curves; areas differ by method so the table and panel can be checked."""
    ds = Dataset(root)
    for record in ds.records():
        files = {}
        gh, gw = record.grid.h, record.grid.w
        left = np.zeros((gh, gw), np.uint8)
        left[:, : gw // 2] = 255
        for span in record.spans:
            methods = {}
            for method, u8 in (("logit", left), ("igos", left[:, ::-1].copy())):
                d, i = CURVES[method]
                png = f"methods/{method}/{span.index}.png"
                files[png] = encode_png(u8)
                area = lambda c: sum((a + b) / 2 / 3 for a, b in zip(c, c[1:], strict=False))  # noqa: E731
                methods[method] = MethodResult(map=MapRef(png=png, lo=0, hi=1), tokens=span.tokens, deletion=d,
                                               insertion=i, deletion_area=round(area(d), 4),
                                               insertion_area=round(area(i), 4))
            span.faithfulness = SpanFaithfulness(score_original=-2, score_baseline=-6, steps=3, methods=methods)
        for token in record.tokens[:TOKENS_WITH_CURVES]:
            d, i = TOKEN_CURVES
            token.faithfulness = TokenFaithfulness(method="tam-reference", score_original=-0.5, score_baseline=-3,
                                                   steps=3, deletion=d, insertion=i, deletion_area=0.2667,
                                                   insertion_area=0.6)
        commit_painting(ds, record, files)
    from contract import stats

    stats.run(argparse.Namespace(dataset=root, json=False))
    return root


def hand_spanned(model_dir, work, max_new_tokens: int, span_tokens=((1, 2, 3), (5,))):
    """A dataset for the faithfulness stage's tests: two smoke paintings described (float64) by
    the tiny captioner in MODEL_DIR, with reliance, and spans placed on tokens by hand (a random-
    weight captioner's words are noise: no classifier finds them): span i covers SPAN_TOKENS[i],
    CVO first, STYLE after. WORK: an empty folder; returns the dataset's folder."""
    from pathlib import Path

    from contract.schema import Category, Span
    from precompute.runner import stamp
    from precompute.smoke import write_smoke_paintings
    from precompute.stages import describe, reliance
    from testkit.harness import stage_args

    work = Path(work)
    paintings = write_smoke_paintings(work / "paintings")
    for extra in ("portrait-in-blue.png", "village-under-stars.png"):
        (paintings / extra).unlink()
    out = work / "ds"
    common = ["--model", str(model_dir), "--device", "cpu", "--dtype", "float64"]
    assert describe.run(stage_args(describe, [paintings, out, "--max-new-tokens", str(max_new_tokens), *common])) == 0
    assert reliance.run(stage_args(reliance, [out, *common])) == 0
    ds = Dataset(out)
    for record in ds.records():
        spans = []
        for index, tokens in enumerate(span_tokens):
            start, end = record.tokens[tokens[0]].start, record.tokens[tokens[-1]].end
            spans.append(Span(index=index, text=record.caption[start:end], start=start, end=end, match="exact",
                              category=Category.CVO if index == 0 else Category.STYLE, tokens=list(tokens)))
        record.spans = spans
        commit_painting(ds, stamp(record, "spans", {"model": "by-hand"}))
    return out
