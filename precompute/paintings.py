"""Loading an input painting safely: a clear PaintingError for every bad file, 8-bit RGB out.

The input folder itself (which files, ids, annotations) is contract.inputs. Pixel depths other
than 8 bits are converted, never clipped (clipping turned a 16-bit scan 99.6% white and a float
TIFF black):
- 16-bit grayscale (Pillow mode I;16*, or I with values in 0..65535): value x 255 / 65535,
  rounded, i.e. scaled by the type's range. 16-bit RGB(A) is reduced by Pillow's decoder itself,
  which keeps each value's high byte.
- 32-bit float grayscale (mode F): values in [0, 1] are scaled by 255; any other range is
  stretched from the image's own minimum and maximum to 0..255, and the record says so.
  NaN or infinite values, and 32-bit integers outside 0..65535, are refused.
- An animated or multi-page image (n_frames > 1) gives its first frame, and the record says so.
What was done is returned as notes (describe keeps them in provenance.input.notes and prints them).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from contract.images import MAX_PIXELS, ImageTooLarge, open_image
from precompute.runner import PaintingError

MIN_SIDE = 28  # Qwen2-VL's resize unit: a 28x28 image is one merged vision token
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA", "P")  # composited on white


@dataclass
class LoadedPainting:
    image: Image.Image  # RGB, EXIF-rotated
    sha256: str  # of the bytes decoded (contract.inputs.fingerprint of the file)
    notes: list[str] = field(default_factory=list)  # conversions worth knowing about


def _to_8bit(im: Image.Image, name: str) -> tuple[Image.Image, str | None]:
    """Grayscale of more than 8 bits -> mode L, scaled as the module docstring says."""
    if im.mode.startswith("I;16") or im.mode == "I":
        values = np.asarray(im).astype(np.float64)  # (H, W)
        if im.mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise PaintingError(f"{name} holds 32-bit integer pixels outside 0..65535; "
                                f"convert it to an 8- or 16-bit image first")
        scaled, note = values * (255 / 65535), "16-bit grayscale scaled to 8 bits (value x 255 / 65535)"
    elif im.mode == "F":
        values = np.asarray(im).astype(np.float64)  # (H, W)
        if not np.isfinite(values).all():
            raise PaintingError(f"{name} holds NaN or infinite pixel values")
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0 and hi <= 1:
            scaled, note = values * 255, "float grayscale in [0, 1] scaled to 8 bits (value x 255)"
        else:
            scaled = (values - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(values)
            note = (f"float grayscale in [{lo:g}, {hi:g}], outside [0, 1]: stretched from its own "
                    f"minimum and maximum to 8 bits")
    else:
        return im, None
    return Image.fromarray(np.floor(scaled + 0.5).astype(np.uint8), mode="L"), note


def load_painting(path: Path, max_pixels: int = MAX_PIXELS) -> LoadedPainting:
    """The image as RGB, EXIF-rotated; PaintingError with a clear reason for a bad file."""
    return load_painting_bytes(path.read_bytes(), path.name, max_pixels)


def load_painting_bytes(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> LoadedPainting:
    """load_painting of bytes already in memory (`name` only for the messages): what `tamscope
    serve --live` checks an upload with before it is queued (backend.live.uploads)."""
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
    notes = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:  # opened at frame 0; load() reads that frame only
        notes.append(f"{frames} frames (animated or multi-page): the first frame is used")
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise PaintingError(f"{name} is corrupt or truncated ({exc})") from None
    im, note = _to_8bit(im, name)
    notes += [note] if note else []
    im = ImageOps.exif_transpose(im)
    if im.mode in ALPHA_MODES:
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    try:
        rgb = im.convert("RGB")
    except ValueError as exc:
        raise PaintingError(f"{name}: its colour mode {im.mode} cannot be converted to RGB ({exc})") from None
    return LoadedPainting(rgb, hashlib.sha256(data).hexdigest(), notes)


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
