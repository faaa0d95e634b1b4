"""`tamscope spanmaps DATASET`: one map per typed span, and how localised it is.

A span's map is the mean (default, the paper's choice) or the max (`--how max`) of its
tokens' maps: with the `reference` TAM variant (the default) the 8-bit token PNGs / 255, as
the authors' pipeline averages its stored maps; with `corrected` the filtered float maps in
[0, 1] from tam_raw.safetensors (the PNGs / 255 when it is missing). It is min-max stretched to 0..255 like the published maps and
stored as spans/<i>.png with its float range (committed with the record: the runner writes
nothing until every span of the painting is done). Metrics (contract.metrics) are computed on that
8-bit map: entropy, Gini, top-10% mass, and the Otsu threshold on the map resized to the
canvas. Spans without tokens but with a map (imported data) keep their map and get their
metrics recomputed. No torch here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from contract.metrics import gini, otsu, span_map, spatial_entropy, top_mass
from contract.schema import MapRef, PaintingRecord, SpanMetrics
from contract.store import Dataset, encode_png, read_png_u8
from precompute.lock import writer
from precompute.runner import Output, add_run_options, parse_shard, run_stage

STAGE = "spanmaps"


def token_maps(folder: Path, record: PaintingRecord) -> np.ndarray:
    """(T, gh, gw) maps in [0, 1] of every token: in the `reference` TAM variant the stored 8-bit
    maps / 255, as TAMArt averages them (after each token's quantisation); otherwise the
    filtered float maps, which keep the levels the 8 bits lose."""
    raw = folder / "tam_raw.safetensors"
    reference = (record.provenance.get("tam") or {}).get("variant") == "reference"
    if raw.is_file() and not reference:
        from safetensors.numpy import load_file

        maps = load_file(raw)["maps"]
        if maps.shape[0] == len(record.tokens):
            return maps
    return np.stack([read_png_u8(folder / t.map.png) / 255.0 for t in record.tokens]) if record.tokens else \
        np.zeros((0, record.grid.h, record.grid.w))


def process(dataset: Dataset, how: str):
    def apply(record: PaintingRecord) -> Output:
        folder = dataset.painting_dir(record.id)
        maps = token_maps(folder, record) if any(s.tokens for s in record.spans) else None
        files = {}
        for span in record.spans:
            if span.tokens and maps is not None:
                u8, lo, hi = span_map(maps[span.tokens], how)
                png = f"spans/{span.index}.png"
                files[png] = encode_png(u8)
                span.map = MapRef(png=png, lo=lo, hi=hi)
            elif span.map is not None:
                u8 = read_png_u8(folder / span.map.png)
            else:
                continue
            threshold, _ = otsu(u8, (record.canvas.width, record.canvas.height))
            span.otsu_threshold = threshold
            span.metrics = SpanMetrics(entropy=spatial_entropy(u8), gini=gini(u8), top10_mass=top_mass(u8))
        return Output(record, files)

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--how", choices=("mean", "max"), default="mean", help="combine token maps by mean or max")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    dataset, shard = Dataset(args.dataset), parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, {"how": args.how}, process(dataset, args.how), shard=shard,
                            force=args.force, needs="spans")
    return 1 if summary.failed else 0
