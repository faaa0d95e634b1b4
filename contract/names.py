"""Names that cross the boundary between input folders and datasets: which files are
paintings, and how a file name becomes a painting id (the id rule is contract.schema.is_valid_id)."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

# the image files precompute reads from an input folder (and downloaders may write)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

ID_HASH_CHARS = 8  # hex digits of the file name's SHA-256 in a painting id
ID_SLUG_CHARS = 100  # the readable part; with "-" and the hash well inside the id's 128 characters


def slugify(stem: str) -> str:
    """A file stem reduced to the id alphabet ([A-Za-z0-9._-], no leading dot, at most 120 chars)."""
    text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return (text or "painting")[:120]


def painting_id(file_name: str) -> str:
    """The id of the painting in input file `file_name`: `<slug>-<hash>`, e.g. `starry-night-1f0c8a2e`.

    The slug (the stem reduced to lowercase [a-z0-9._-]) keeps ids readable; the first 8 hex
    digits of the SHA-256 of the exact file name (its bytes, as the file system gives them) make
    every name its own id: names the slug cannot tell apart (`Starry Night.jpg` and
    `starry-night.jpg`, `a.png` and `a.jpg`, `一.png` and `二.png`) get different ids. The hash is
    always there, since no rule of one name alone could leave both `a.png` and `a.jpg` bare.
    An id depends on its file name only: never on which other files the folder holds.
    """
    stem = os.path.splitext(file_name)[0]
    slug = slugify(stem).lower()[:ID_SLUG_CHARS].rstrip("-._") or "painting"
    digest = hashlib.sha256(os.fsencode(file_name)).hexdigest()[:ID_HASH_CHARS]
    return f"{slug}-{digest}"
