"""`tamscope import-tamart SITE_DIR OUT_DATASET`: the paper authors' published data as a dataset.

Their project page (repository nicolafan/tamart, branch gh-pages, MIT licence) holds:
    assets/data/index.json             {"paintings": [{stem, title, artist, year, style, ...}]}
    assets/data/paintings/<stem>.json  caption, segments, spans {word, cat, map (base64 uint8), sam, sam_n}, meta
    assets/img/<stem>.jpg              the painting at the size maps and masks refer to
    assets/masks/<stem>__<k>.png       SAM 3 union mask of span k, RGBA (mask = alpha > 0)
We keep their maps, spans, masks and verdicts, and record where everything came from.
- Spans keep their published order and index (so span k is their `<stem>__<k>.png` mask).
- Span offsets: the spans' words are placed in the caption by contract.phrasealign, the
  aligner of the pipeline's span stage: exactly, repaired (dropped punctuation, split words)
  or approximately (reworded: "figure and halo" for "figure and the halo", with its similarity),
  on whole words, in the order they are listed (a repeated word takes the next occurrence;
  spans may nest). The word is authoritative, not their highlighted segment: segments come from
  token indices their span LLM returned and often miss the words ("motion and dynamism."
  highlighted for "sense of motion and dynamism"). A located span keeps their word as `phrase`
  where it differs from the caption's text. A word the caption does not hold even approximately
  (6 of the 449 spans of the sample) is kept, with its map, metrics and mask, but without offsets
  (start = end = None): its map is real output of their pipeline and belongs in the statistics,
  while an invented position in the caption would not. The counts are in each record's
  provenance and the manifest's.
- Span maps: their base64 grid maps are already min-max stretched to 0..255 (lo=0, hi=1).
- Masks: converted to 0/255 grayscale PNGs at canvas size. CVO/ICON spans without a mask
  are recorded as "SAM 3 found nothing" (instances 0).
- Metrics (entropy, Gini, top-10%, Otsu, IoU) are recomputed with contract.metrics.
- Ground-truth artist names carry trailing spaces in their data ("van Gogh Vincent "):
  stripped. No token data was published, so records have no tokens.

The folder is untrusted input (a download). Its JSON is read through sources.tamart_format
(ids by the full id rule, plain file names, bounded numbers, one entry per stem up to case)
and every file through read_site_file: it must resolve inside SITE after following symlinks,
be a regular file and stay under a size limit; images open only as JPEG/PNG under the pixel
limit of contract.images. A painting is built in memory and written only when all of it is
good. One that fails for any reason is recorded as a failure and the import goes on: as a
failure record when its stem is a valid id of its own, otherwise (an invalid stem, or one
that collides with an earlier painting) in the manifest's provenance only, since a folder
for it would be wrong or would overwrite the other painting.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import stat
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from contract.images import open_image
from contract.metrics import gini, iou, otsu, spatial_entropy, top_mass
from contract.phrasealign import Placement, align_phrases
from contract.schema import (
    SEGMENTABLE,
    Annotations,
    Attribution,
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
from sources.tamart_format import (
    INDEX,
    MASKS,
    MAX_FILE_BYTES,
    Verdicts,
    painting_json,
    read_index,
    read_painting,
    safe_asset_path,
)
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


def read_site_file(site: Path, rel: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the file `rel` names inside `site` (an absolute, resolved folder).

    `rel` must be a plain path under assets/; what it leads to, after following every symlink
    on the way, must be inside site (a symlinked file or folder leading elsewhere is refused)
    and a regular file (a FIFO would block the import, a device never end) of at most `limit`
    bytes. The file is opened without following a symlink swapped in after the check.
    """
    safe_asset_path(rel)
    path = (site / rel).resolve()
    if not path.is_relative_to(site):
        raise LayoutError(f"{rel} leads outside the site folder (through a symlink)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise LayoutError(f"{rel} is missing") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise LayoutError(f"{rel} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise LayoutError(f"{rel} is larger than the {limit / 2**20:.0f} MB limit")
    return data


def locate_spans(data: dict) -> tuple[list[Placement], dict[str, int]]:
    """For each published span, in order, where its word sits in the caption (a Placement, not
    placed when the caption does not hold it); and counts: exact, repaired, approximate,
    not_in_caption, and outside_segment (words their highlighted segment does not contain)."""
    caption, seg_text, at = data["caption"], {}, 0
    for seg in data.get("segments", []):
        if seg["s"] is not None and seg["s"] >= 0:
            seg_text.setdefault(seg["s"], seg["t"])
        at += len(seg["t"])
    if at != len(caption):
        raise LayoutError(f"{data.get('stem')}: segments do not rebuild the caption")
    words = [span.get("word", "") for span in data.get("spans", [])]
    placements = align_phrases(caption, words, overlap=True)
    counts = {"exact": 0, "repaired": 0, "approximate": 0, "not_in_caption": 0, "outside_segment": 0}
    for idx, (word, where) in enumerate(zip(words, placements, strict=True)):
        counts[where.match or "not_in_caption"] += 1
        counts["outside_segment"] += where.placed and word not in seg_text.get(idx, "")
    return placements, counts


def import_painting(site: Path, stem: str) -> tuple[PaintingRecord, dict[str, bytes]]:
    """The record of painting `stem` and its files ({path in the painting folder: bytes}),
    built in memory: nothing is written unless all of it is good."""
    data_file = read_site_file(site, painting_json(stem))
    with _reading(painting_json(stem)):
        data = read_painting(stem, data_file)
    image = read_site_file(site, data.image)
    with _reading(data.image), open_image(io.BytesIO(image), formats=("JPEG", "PNG")) as im:
        im.load()  # decodes everything: a truncated file fails here
        canvas, (w, h) = ("canvas.png" if im.format == "PNG" else "canvas.jpg"), im.size
        thumb = im.convert("RGB")
    thumb.thumbnail((256, 256))
    files = {canvas: image, "thumb.jpg": _jpeg(thumb)}
    if (w, h) != (data.w, data.h):
        raise LayoutError(f"{stem}: image is {w}x{h}, the data says {data.w}x{data.h}")
    gh, gw = data.grid_h, data.grid_w
    placements, counts = locate_spans(data.model_dump())
    spans = []
    for k, (where, raw) in enumerate(zip(placements, data.spans, strict=True)):
        grid_map = np.frombuffer(base64.b64decode(raw.map, validate=True), dtype=np.uint8)
        if grid_map.size != gh * gw:
            raise LayoutError(f"{stem}: span map of {grid_map.size} values for a {gh}x{gw} grid")
        grid_map = grid_map.reshape(gh, gw)
        png = f"spans/{k}.png"
        files[png] = encode_png(grid_map)
        threshold, otsu_mask = otsu(grid_map, (w, h))
        sam = None
        if raw.cat in SEGMENTABLE:
            if raw.sam:
                mask_file = read_site_file(site, f"{MASKS}/{raw.sam}")
                with _reading(f"{MASKS}/{raw.sam}"):
                    sam_mask = read_png_u8(io.BytesIO(mask_file)) > 0
                if sam_mask.shape != (h, w):
                    raise LayoutError(f"{stem}: mask {raw.sam} is not {w}x{h}")
                files[f"sam/{k}.png"] = encode_png(sam_mask.astype(np.uint8) * 255)
                sam = SamResult(mask=f"sam/{k}.png", instances=raw.sam_n or 1, iou=iou(otsu_mask, sam_mask))
            else:
                sam = SamResult(instances=0)
        text = data.caption[where.start:where.end] if where.placed else raw.word
        phrase = raw.word if where.placed and text != raw.word.strip() else None
        spans.append(Span(index=k, text=text, start=where.start, end=where.end, match=where.match,
                          similarity=where.similarity, phrase=phrase, category=raw.cat,
                          map=MapRef(png=png, lo=0.0, hi=1.0), otsu_threshold=threshold,
                          metrics=SpanMetrics(entropy=spatial_entropy(grid_map), gini=gini(grid_map),
                                              top10_mass=top_mass(grid_map)), sam=sam))
    meta = data.meta or Verdicts()
    record = PaintingRecord(
        id=stem, source_file=Path(data.image).name,
        annotations=Annotations(title=_clean(data.gt_title), artist=_clean(data.gt_artist),
                                year=data.year, style=_clean(data.style), genre=_clean(data.genre)),
        canvas=ImageRef(path=canvas, width=w, height=h),
        thumb=ImageRef(path="thumb.jpg", width=thumb.width, height=thumb.height),
        grid=Grid(h=gh, w=gw), prompt=PROMPT, caption=data.caption, spans=spans,
        metadata=MetadataVerdict(title_claimed=meta.title_pred, artist_claimed=meta.artist_pred,
                                 title_correct=meta.title_correct, artist_correct=meta.artist_correct,
                                 source="tamart"),
        stages={"import-tamart": {"finished": utcnow(), "settings": {"source": "tamart"}}},
        provenance={"source": SOURCE, "file": painting_json(stem),
                    "span_matching": counts,
                    "published_span_count": len(data.spans)},
    )
    return record, files


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _reason(exc: Exception) -> str:
    # our checks raise ValueErrors that say what is wrong; anything else a library raises on a
    # hostile file (Pillow: SyntaxError, struct.error, EOFError ...) is named by its type too
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


@contextmanager
def _reading(rel: str) -> Iterator[None]:
    """Name the file when decoding it fails."""
    try:
        yield
    except LayoutError:
        raise
    except Exception as exc:
        raise LayoutError(f"{rel}: {_reason(exc)}") from exc


def import_tamart(site: Path, out: Path, left_out: Mapping[str, str] | None = None) -> Dataset:
    """Import every painting of index.json, except those in `left_out` ({stem: why}, kept in
    the provenance: `tamscope demo` leaves out paintings whose download failed). A painting
    that cannot be imported is recorded as a failure and the import goes on (module docstring)."""
    site, ds, left_out = Path(site).resolve(), Dataset(out), dict(left_out or {})
    try:
        index = read_site_file(site, INDEX)
        with _reading(INDEX):
            stems, refused = read_index(index)
    except ValueError as exc:
        raise LayoutError(f"{site} is not a project-page folder: {exc}") from None
    failed, matching, imported = dict(refused), Counter(), 0
    for stem in tqdm(stems, desc="import-tamart", unit="painting", dynamic_ncols=True):
        if stem in left_out:
            continue
        try:
            record, files = import_painting(site, stem)
        except Exception as exc:  # one bad painting is data, whatever the library that choked on it
            failed[stem] = _reason(exc)
            ds.save_record(PaintingRecord(id=stem, failures=[
                Failure(stage="import-tamart", error=failed[stem], time=utcnow())]))
            continue
        folder = ds.painting_dir(stem)
        for rel, data in files.items():
            atomic_write_bytes(folder / rel, data)
        ds.save_record(record)
        matching.update(record.provenance["span_matching"])
        imported += 1
    ds.refresh_manifest(
        name="tamart", label=None, attribution=ATTRIBUTION, prompt=PROMPT, models=MODELS,
        description=("The paper authors' published results: Qwen2-VL-2B captions, spans typed by Qwen3-4B, "
                     "TAM span maps and SAM 3 masks (imported from their project page)."),
        provenance={**SOURCE, "imported": utcnow(), "paintings": len(stems) + len(refused),
                    "spans_not_in_caption": matching["not_in_caption"], "span_matching": dict(matching),
                    "import_failures": failed, "left_out": left_out})
    print(f"import-tamart: {imported} of {len(stems) + len(refused)} paintings imported"
          + (f"; {len(left_out)} left out (listed in the manifest's provenance)" if left_out else "")
          + (f"; {len(failed)} failed:" if failed else ""))
    for what, error in failed.items():
        print(f"  {what}: {error}")
    if imported:
        print(f"import-tamart: spans placed in their captions: {matching['exact']} exact, "
              f"{matching['repaired']} repaired, {matching['approximate']} approximate; "
              f"{matching['not_in_caption']} not in the caption")
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

        stats.run(argparse.Namespace(dataset=args.out, json=False, quiet=True))  # writes the index too
    else:
        from contract.index import ensure_index

        ensure_index(args.out)
    from contract.validate import run as validate

    valid = validate(argparse.Namespace(dataset=ds.root))
    return 1 if valid or ds.manifest().provenance.get("import_failures") else 0
