"""A small valid dataset built from code (no models): for validate, server, site and browser tests.

Deterministic: synthetic canvases with shapes, a caption with exact token offsets, one
blob-shaped grid map per token, spans of every category, SAM masks (rectangles) for the CVO
and ICON spans but one ("calm water": SAM 3 found nothing), metadata claims and statistics.
The inputs are made up; everything derived from them is computed as the pipeline computes it
(contract.metrics, contract.textmatch): a span's map is the mean of its tokens' maps, and its
metrics, Otsu threshold and IoU with the SAM mask are measured on that map. So the numbers a
dashboard test reads are those of the PNGs it can open, and tests derive them independently.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from contract.metrics import gini, iou, otsu, span_map, spatial_entropy, top_mass
from contract.schema import (
    SEGMENTABLE,
    Annotations,
    Grid,
    ImageRef,
    MapRef,
    MetadataVerdict,
    PaintingRecord,
    SamResult,
    Span,
    SpanMetrics,
    Token,
)
from contract.store import Dataset, atomic_write_bytes, encode_png
from contract.textmatch import artist_matches, title_matches

CAPTION = ('This painting titled "Night Harbour" by Anna Vermeer shows a small village beside calm water '
           "under a starry sky. Vibrant brushstrokes create a sense of calm.")
SPANS = [("Night Harbour", "META"), ("Anna Vermeer", "META"), ("a small village", "CVO"), ("calm water", "CVO"),
         ("a starry sky", "ICON"), ("Vibrant brushstrokes", "STYLE"), ("a sense of calm", "AFFECT")]
GRID = (6, 8)
# a second model's caption of the same paintings (model comparison): two phrases the same as the
# first's up to case and article, one close (the first's words inside it), two of its own
CAPTION_B = ("A small village sits beside a quiet harbour under the starry sky. "
             "Loose vibrant brushstrokes give the scene a dreamy mood.")
SPANS_B = [("A small village", "CVO"), ("a quiet harbour", "CVO"), ("the starry sky", "ICON"),
           ("Loose vibrant brushstrokes", "STYLE"), ("a dreamy mood", "AFFECT")]


def blob(grid, cy, cx, width) -> np.ndarray:
    y, x = np.mgrid[0:grid[0], 0:grid[1]]
    m = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return np.floor(255 * (m - m.min()) / (m.max() - m.min())).astype(np.uint8)


def words(caption: str) -> list[tuple[int, int]]:
    """Token offsets: each word with its leading space, so the tokens tile the caption."""
    cuts = [0] + [i for i, ch in enumerate(caption) if ch == " "] + [len(caption)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def make_painting(ds: Dataset, i: int, rng: np.random.Generator, pid: str | None = None, caption: str = CAPTION,
                  phrases: list[tuple[str, str]] = SPANS, fingerprint: bool = False) -> PaintingRecord:
    pid = pid or f"painting-{i}"
    folder = ds.painting_dir(pid)
    w, h = 320 + 40 * i, 240
    canvas = Image.new("RGB", (w, h), (30 + 40 * i, 50, 90))
    ImageDraw.Draw(canvas).ellipse([w * 0.2, h * 0.5, w * 0.5, h * 0.9], fill=(220, 180, 60))
    folder.mkdir(parents=True, exist_ok=True)
    canvas.save(folder / "canvas.jpg", quality=90)
    # the "input" is the canvas itself: painting i of any fixture dataset has the same fingerprint
    source = {"file": f"painting-{i}.jpg", "sha256": hashlib.sha256((folder / "canvas.jpg").read_bytes()).hexdigest()}
    thumb = canvas.resize((w // 2, h // 2))
    thumb.save(folder / "thumb.jpg", quality=85)
    tokens, token_maps = [], []
    for k, (a, b) in enumerate(words(caption)):
        png = f"tokens/{k}.png"
        token_maps.append(blob(GRID, rng.uniform(0, 5), rng.uniform(0, 7), 1.5))
        atomic_write_bytes(folder / png, encode_png(token_maps[-1]))
        tokens.append(Token(index=k, id=100 + k, text=caption[a:b], start=a, end=b, map=MapRef(png=png, lo=0, hi=3.5),
                            reliance=float(rng.normal(0.5, 1)), visual=bool(rng.random() > 0.5)))
    maps = np.stack(token_maps) / 255.0  # (T, gh, gw), as the spanmaps stage reads token PNGs
    spans = []
    for k, (text, cat) in enumerate(phrases):
        start = caption.index(text)
        covered = [t.index for t in tokens if t.start < start + len(text) and t.end > start]
        png = f"spans/{k}.png"
        u8, lo, hi = span_map(maps[covered])
        atomic_write_bytes(folder / png, encode_png(u8))
        threshold, otsu_mask = otsu(u8, (w, h))
        sam = None
        if cat in SEGMENTABLE:
            if text == "calm water":
                sam = SamResult(instances=0)  # SAM 3 found nothing
            else:
                mask = np.zeros((h, w), np.uint8)
                mask[h // 3: 2 * h // 3, w // 4: w // 2 + 20 * k] = 255
                atomic_write_bytes(folder / f"sam/{k}.png", encode_png(mask))
                sam = SamResult(mask=f"sam/{k}.png", instances=1 + k % 2, scores=[0.9] * (1 + k % 2),
                                iou=iou(otsu_mask, mask > 0))
        spans.append(Span(index=k, text=text, start=start, end=start + len(text), category=cat, tokens=covered,
                          map=MapRef(png=png, lo=lo, hi=hi), otsu_threshold=threshold,
                          metrics=SpanMetrics(entropy=spatial_entropy(u8), gini=gini(u8), top10_mass=top_mass(u8)),
                          sam=sam))
    title, artist = ["Night Harbour", "Blue Hour", "Quiet Bay", "Dusk"][i % 4], ["Anna Vermeer", "Piet Blauw"][i % 2]
    claims = {"title_claimed": "Night Harbour", "artist_claimed": "Anna Vermeer"}  # what CAPTION names
    title_ok, artist_ok = title_matches(claims["title_claimed"], title), artist_matches(claims["artist_claimed"], artist)
    return PaintingRecord(
        id=pid, annotations=Annotations(title=title, artist=artist, year=1880 + i,
                                        style=["Impressionism", "Realism"][i % 2], genre="marina"),
        canvas=ImageRef(path="canvas.jpg", width=w, height=h), thumb=ImageRef(path="thumb.jpg", width=w // 2,
                                                                               height=h // 2),
        grid=Grid(h=GRID[0], w=GRID[1]), prompt="Describe the content and style of this image.", caption=caption,
        tokens=tokens, spans=spans,
        metadata=MetadataVerdict(**claims, title_correct=title_ok, artist_correct=artist_ok,
                                 title_string_match=title_ok, artist_string_match=artist_ok),
        stages={"describe": {"finished": "2026-01-01T00:00:00Z"}},
        provenance={"tam": tam_provenance(i), **({"input": source} if fingerprint else {})})


def tam_provenance(i: int) -> dict:
    """painting-1 was described with the corrected TAM variant, the others with the reference."""
    if i == 1:
        return {"variant": "corrected"}
    return {"variant": "reference", "strings_match_ids": True, "first_prompt_class": {"id": 279, "text": " the"},
            "nan_cells": 12 if i == 0 else 0, "nan_tokens": [3] if i == 0 else [], "undefined_tokens": []}


def make_dataset(root: Path, n_paintings: int = 3, seed: int = 0, with_stats: bool = True,
                 label: str | None = "Fixture dataset built by testkit/fixture_dataset.py",
                 captioner: str | None = None, caption: str = CAPTION, phrases: list[tuple[str, str]] = SPANS,
                 ids: dict[int, str] | None = None, fingerprints: bool = False) -> Path:
    """`captioner`: the model id the manifest names; `caption`/`phrases`: another caption (each
    phrase must occur in it); `ids`: painting i's id when not painting-i; `fingerprints`: record
    provenance.input as describe does, the canvas standing for the input file (so painting i has
    the same fingerprint in every fixture dataset: a second model's dataset, for comparison tests;
    off by default: `validate --input` would miss those input files)."""
    rng = np.random.default_rng(seed)
    ds = Dataset(root)
    for i in range(n_paintings):
        ds.save_record(make_painting(ds, i, rng, (ids or {}).get(i), caption, phrases, fingerprints))
    ds.refresh_manifest(name="fixture", description="A synthetic dataset for tests.", label=label,
                        prompt="Describe the content and style of this image.",
                        **({"models": {"captioner": {"id": captioner, "revision": "fixture"}}} if captioner else {}))
    if with_stats:
        try:
            from contract import stats
        except ImportError:
            return root
        stats.run(argparse.Namespace(dataset=root, json=False))
    return root
