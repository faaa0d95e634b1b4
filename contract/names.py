"""Names that cross the boundary between input folders and datasets: which files are
paintings, and how a file name becomes a painting id (the id rule is contract.schema.is_valid_id)."""

from __future__ import annotations

import re
import unicodedata

# the image files precompute reads from an input folder (and downloaders may write)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})


def slugify(stem: str) -> str:
    """A file stem reduced to the id alphabet ([A-Za-z0-9._-], no leading dot, at most 120 chars)."""
    text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return (text or "painting")[:120]
