"""The input folder: paintings (images) plus optional annotations, and safe image loading.

    my-paintings/
      starry-night.jpg, impression-sunrise.png, ...
      annotations.json   {"starry-night": {"title", "artist", "year", "style", "genre"}, ...}
                         or [{"file": "starry-night.jpg", "title": ...}, ...]
      annotations.csv    columns file,title,artist,year,style,genre (instead of the json)

A painting's id is its file stem reduced to the id alphabet ([A-Za-z0-9._-], no leading dot).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import orjson
from PIL import Image, ImageOps, UnidentifiedImageError

from contract.images import MAX_PIXELS, ImageTooLarge, open_image
from contract.names import IMAGE_SUFFIXES, slugify
from contract.schema import Annotations
from precompute.runner import PaintingError

MIN_SIDE = 28  # Qwen2-VL's resize unit: a 28x28 image is one merged vision token
ANNOTATION_FIELDS = ("title", "artist", "year", "style", "genre")


@dataclass(frozen=True)
class PaintingInput:
    id: str
    path: Path
    annotations: Annotations


def load_annotations(folder: Path) -> dict[str, Annotations]:
    """File stem -> Annotations, from annotations.json or annotations.csv (if present)."""
    rows: list[dict] = []
    if (folder / "annotations.json").is_file():
        data = orjson.loads((folder / "annotations.json").read_bytes())
        if isinstance(data, dict):
            rows = [{"file": stem, **fields} for stem, fields in data.items()]
        elif isinstance(data, list):
            rows = data
        else:
            raise ValueError("annotations.json must be an object keyed by file stem or a list of objects")
    elif (folder / "annotations.csv").is_file():
        with open(folder / "annotations.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    out = {}
    for row in rows:
        if not isinstance(row, dict) or not row.get("file"):
            raise ValueError(f"annotation without a 'file': {row!r}")
        fields = {k: (row.get(k) or None) for k in ANNOTATION_FIELDS}
        if isinstance(fields["year"], str) and fields["year"].isdigit():
            fields["year"] = int(fields["year"])
        out[Path(str(row["file"])).stem] = Annotations(**fields)
    return out


def scan_input(folder: Path) -> list[PaintingInput]:
    """Every image of the folder (sorted by name) with its id and annotations."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist")
    annotations = load_annotations(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    seen: dict[str, int] = {}
    out = []
    for path in files:
        base = slugify(path.stem)
        n = seen.get(base, 0)
        seen[base] = n + 1
        pid = base if n == 0 else f"{base}-{n + 1}"  # same stem, other suffix: numbered in name order
        out.append(PaintingInput(pid, path, annotations.get(path.stem, Annotations())))
    return out


def load_painting(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image as RGB, EXIF-rotated; PaintingError with a clear reason for a bad file."""
    name = path.name
    data = path.read_bytes()
    if not data:
        raise PaintingError(f"{name} is an empty file")
    try:
        im = open_image(io.BytesIO(data), max_pixels=max_pixels)  # the size is checked from the header
    except ImageTooLarge as exc:
        raise PaintingError(f"{name}: {exc}; downscale it first") from None
    except UnidentifiedImageError as exc:
        raise PaintingError(f"{name} is {exc}") from None
    w, h = im.size
    if min(w, h) < MIN_SIDE:
        raise PaintingError(f"{name} is {w}x{h} pixels; the captioner needs at least {MIN_SIDE}x{MIN_SIDE}")
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise PaintingError(f"{name} is corrupt or truncated ({exc})") from None
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def fit(img: Image.Image, max_side: int) -> Image.Image:
    """Downscale (never upscale) so the longer side is at most max_side."""
    w, h = img.size
    scale = max_side / max(w, h)
    if scale >= 1:
        return img.copy()
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()
