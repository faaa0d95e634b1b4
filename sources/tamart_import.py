"""`tamscope import-tamart SITE_DIR OUT_DATASET`: the paper authors' published data as a dataset.

Their project page (repository nicolafan/tamart, branch gh-pages, MIT licence) holds:
    assets/data/index.json             {"paintings": [{stem, title, artist, year, style, ...}]}
    assets/data/paintings/<stem>.json  caption, segments, spans {word, cat, map (base64 uint8), sam, sam_n}, meta
    assets/img/<stem>.jpg              the painting at the size maps and masks refer to
    assets/masks/<stem>__<k>.png       SAM 3 union mask of span k, RGBA (mask = alpha > 0)
We keep their maps, spans, masks and verdicts, and record where everything came from.
- Spans keep their published order and index (so span k is their `<stem>__<k>.png` mask).
- Span offsets: a span's `word` is found in the caption (contract.textmatch: exactly, or
  repaired for dropped punctuation and split words), nearest to its highlighted segment;
  their segments often miss the words. A word the caption does not contain (35 of the 449
  spans of the sample) is kept, with its map, metrics and mask, but without offsets
  (start = end = None): its map is real output of their pipeline and belongs in the
  statistics, while an invented position in the caption would not. The counts are in each
  record's provenance.
- Span maps: their base64 grid maps are already min-max stretched to 0..255 (lo=0, hi=1).
- Masks: converted to 0/255 grayscale PNGs at canvas size. CVO/ICON spans without a mask
  are recorded as "SAM 3 found nothing" (instances 0).
- Metrics (entropy, Gini, top-10%, Otsu, IoU) are recomputed with contract.metrics.
- Ground-truth artist names carry trailing spaces in their data ("van Gogh Vincent "):
  stripped. No token data was published, so records have no tokens.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import numpy as np
import orjson
from PIL import Image
from tqdm import tqdm

from contract.metrics import gini, iou, otsu, spatial_entropy, top_mass
from contract.schema import (
    ID_RE,
    SEGMENTABLE,
    Annotations,
    Attribution,
    Category,
    Failure,
    Grid,
    ImageRef,
    MapRef,
    MetadataVerdict,
    ModelRef,
    PaintingRecord,
    SamResult,
    Span,
    SpanMetrics,
)
from contract.store import Dataset, atomic_write_bytes, encode_png, read_png_u8, utcnow
from contract.textmatch import find_phrase
from sources.tamart_site import DEFAULT_BASE_URL

IMPORTER_VERSION = 2  # bump when what an import writes changes: `tamscope demo` then imports again
SOURCE = {"repository": "nicolafan/tamart", "branch": "gh-pages", "licence": "MIT",
          "paper": "Understanding How MLLMs Describe Artworks Using Token Activation Maps"}
# shown on every page that shows the imported data (the hosted demo included)
ATTRIBUTION = Attribution(
    text=("Data: N. Fanelli, P. De Marinis, R. Scaringi, E. Cetinic, G. Vessio, G. Castellano, "
          f"\u201c{SOURCE['paper']}\u201d: their published captions, maps and masks, "
          "with the painting images as published on their project page"),
    url=DEFAULT_BASE_URL, licence=SOURCE["licence"])
MODELS = {"captioner": ModelRef(id="Qwen/Qwen2-VL-2B-Instruct"),
          "span_classifier": ModelRef(id="Qwen/Qwen3-4B-Instruct-2507"),
          "segmenter": ModelRef(id="facebook/sam3")}
PROMPT = "Describe the content and style of this image."


class LayoutError(ValueError):
    """The folder is not in the project-page layout (the message says what is missing)."""


def _clean(text):
    return text.strip() if isinstance(text, str) else text


def locate_spans(data: dict) -> tuple[list[tuple[int, int] | None], dict[str, int]]:
    """For each published span, in order: (start, end) in the caption, or None when the
    caption does not contain its word; and counts of how each was found (exact, repaired,
    outside_segment, not_in_caption).

    Their segments come from token indices the span LLM returned, which often miss the
    words ("motion and dynamism." highlighted for "sense of motion and dynamism"), so the
    word is authoritative: contract.textmatch finds it (exactly, or repaired for dropped
    punctuation and split words), nearest to its segment.
    """
    caption, seg_start, seg_text, at = data["caption"], {}, {}, 0
    for seg in data.get("segments", []):
        if seg["s"] is not None and seg["s"] >= 0:
            seg_start.setdefault(seg["s"], at)
            seg_text.setdefault(seg["s"], seg["t"])
        at += len(seg["t"])
    if at != len(caption):
        raise LayoutError(f"{data.get('stem')}: segments do not rebuild the caption")
    offsets: list[tuple[int, int] | None] = []
    counts = {"exact": 0, "repaired": 0, "outside_segment": 0, "not_in_caption": 0}
    for idx, span in enumerate(data.get("spans", [])):
        word = span.get("word", "")
        hit = find_phrase(caption, word, anchor=seg_start.get(idx, 0))
        if hit is None:
            counts["not_in_caption"] += 1
            offsets.append(None)
            continue
        start, end, how = hit
        counts[how] += 1
        counts["outside_segment"] += word not in seg_text.get(idx, "")
        offsets.append((start, end))
    return offsets, counts


def import_painting(site: Path, data: dict, ds: Dataset) -> PaintingRecord:
    stem = data["stem"]
    if not ID_RE.match(stem):
        raise LayoutError(f"painting stem {stem!r} is not a valid id")
    folder = ds.painting_dir(stem)
    image_path = site / data["image"]
    atomic_write_bytes(folder / "canvas.jpg", image_path.read_bytes())
    with Image.open(image_path) as im:
        w, h = im.size
        thumb = im.convert("RGB")
        thumb.thumbnail((256, 256))
        from io import BytesIO

        buf = BytesIO()
        thumb.save(buf, format="JPEG", quality=85)
        atomic_write_bytes(folder / "thumb.jpg", buf.getvalue())
    if (w, h) != (data["w"], data["h"]):
        raise LayoutError(f"{stem}: image is {w}x{h}, the data says {data['w']}x{data['h']}")
    gh, gw = data["grid_h"], data["grid_w"]
    offsets, counts = locate_spans(data)
    spans = []
    for k, (where, raw) in enumerate(zip(offsets, data.get("spans", []), strict=True)):
        grid_map = np.frombuffer(base64.b64decode(raw["map"]), dtype=np.uint8)
        if grid_map.size != gh * gw:
            raise LayoutError(f"{stem}: span map of {grid_map.size} values for a {gh}x{gw} grid")
        grid_map = grid_map.reshape(gh, gw)
        png = f"spans/{k}.png"
        atomic_write_bytes(folder / png, encode_png(grid_map))
        threshold, otsu_mask = otsu(grid_map, (w, h))
        category = Category(raw["cat"])
        sam = None
        if category in SEGMENTABLE:
            if raw.get("sam"):
                sam_mask = read_png_u8(site / "assets" / "masks" / raw["sam"]) > 0
                if sam_mask.shape != (h, w):
                    raise LayoutError(f"{stem}: mask {raw['sam']} is not {w}x{h}")
                atomic_write_bytes(folder / f"sam/{k}.png", encode_png(sam_mask.astype(np.uint8) * 255))
                sam = SamResult(mask=f"sam/{k}.png", instances=int(raw.get("sam_n") or 1),
                                iou=iou(otsu_mask, sam_mask))
            else:
                sam = SamResult(instances=0)
        start, end = where if where is not None else (None, None)
        text = data["caption"][start:end] if where is not None else raw.get("word", "")
        spans.append(Span(index=k, text=text, start=start, end=end, category=category,
                          map=MapRef(png=png, lo=0.0, hi=1.0), otsu_threshold=threshold,
                          metrics=SpanMetrics(entropy=spatial_entropy(grid_map), gini=gini(grid_map),
                                              top10_mass=top_mass(grid_map)), sam=sam))
    meta = data.get("meta") or {}
    return PaintingRecord(
        id=stem, source_file=Path(data["image"]).name,
        annotations=Annotations(title=_clean(data.get("gt_title")), artist=_clean(data.get("gt_artist")),
                                year=data.get("year"), style=_clean(data.get("style")), genre=_clean(data.get("genre"))),
        canvas=ImageRef(path="canvas.jpg", width=w, height=h),
        thumb=ImageRef(path="thumb.jpg", width=thumb.width, height=thumb.height),
        grid=Grid(h=gh, w=gw), prompt=PROMPT, caption=data["caption"], spans=spans,
        metadata=MetadataVerdict(title_claimed=meta.get("title_pred"), artist_claimed=meta.get("artist_pred"),
                                 title_correct=meta.get("title_correct"), artist_correct=meta.get("artist_correct"),
                                 source="tamart"),
        stages={"import-tamart": {"finished": utcnow(), "settings": {"source": "tamart"}}},
        provenance={"source": SOURCE, "file": f"assets/data/paintings/{stem}.json",
                    "span_matching": counts,
                    "published_span_count": len(data.get("spans", []))},
    )


def import_tamart(site: Path, out: Path) -> Dataset:
    """Import every painting of index.json. A painting that cannot be imported (missing or
    malformed file) is recorded as a failed painting and the import goes on."""
    site, ds = Path(site), Dataset(out)
    index_path = site / "assets" / "data" / "index.json"
    if not index_path.is_file():
        raise LayoutError(f"{site} is not a project-page folder: {index_path} is missing")
    index = orjson.loads(index_path.read_bytes())
    stems = [p["stem"] for p in index.get("paintings", [])]
    not_in_caption, failed = 0, {}
    for stem in tqdm(stems, desc="import-tamart", unit="painting", dynamic_ncols=True):
        path = site / "assets" / "data" / "paintings" / f"{stem}.json"
        try:
            if not path.is_file():
                raise LayoutError(f"{path.name} is missing (listed in index.json)")
            record = import_painting(site, orjson.loads(path.read_bytes()), ds)
        except (LayoutError, OSError, ValueError, KeyError, TypeError) as exc:  # one bad painting is data
            failed[stem] = str(exc) if isinstance(exc, LayoutError) else f"{type(exc).__name__}: {exc}"
            if ID_RE.match(stem):
                ds.save_record(PaintingRecord(id=stem, failures=[
                    Failure(stage="import-tamart", error=failed[stem], time=utcnow())]))
            continue
        not_in_caption += record.provenance["span_matching"]["not_in_caption"]
        ds.save_record(record)
    ds.refresh_manifest(
        name="tamart", label=None, attribution=ATTRIBUTION, prompt=PROMPT, models=MODELS,
        description=("The paper authors' published results: Qwen2-VL-2B captions, spans typed by Qwen3-4B, "
                     "TAM span maps and SAM 3 masks (imported from their project page)."),
        provenance={**SOURCE, "imported": utcnow(), "paintings": len(stems), "spans_not_in_caption": not_in_caption,
                    "import_failures": failed})
    for stem, error in failed.items():
        print(f"import-tamart: {stem}: {error}")
    return ds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", type=Path, help="folder in the project-page layout (assets/data/index.json ...)")
    parser.add_argument("out", type=Path, help="dataset folder to write")
    parser.add_argument("--no-stats", action="store_true", help="skip computing stats.json")


def run(args: argparse.Namespace) -> int:
    try:
        ds = import_tamart(args.site, args.out)
    except LayoutError as exc:
        print(f"import-tamart: {exc}")
        return 1
    if not args.no_stats:
        from contract import stats

        stats.run(argparse.Namespace(dataset=args.out, json=False, quiet=True))
    from contract.validate import run as validate

    valid = validate(argparse.Namespace(dataset=ds.root))
    return 1 if valid or ds.manifest().provenance.get("import_failures") else 0
