"""Bytes ready to send, and the bounded cache that reads dataset files into them.

A `Blob` carries everything a response needs so that handlers do no work per request: the
body, a gzip variant for text, a strong ETag (content hash) and the media type. Dataset
files are hashed once at startup (backend.catalog); `FileCache` reads them on first use and
keeps the most recently used ones within a byte budget.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tamscope.serve")

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".json": "application/json", ".js": "text/javascript", ".mjs": "text/javascript",
               ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml", ".ico": "image/x-icon"}


def media_type(path: Path) -> str:
    media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return media + "; charset=utf-8" if media.startswith("text/") else media


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True)
class Blob:
    """Bytes ready to send: identity and gzip variants, a strong ETag per variant."""

    body: bytes
    gzipped: bytes | None
    etag: str  # '"<sha256 prefix>"'; the gzip variant's tag is etag_gzip (RFC 9110: one tag per encoding)
    media_type: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Blob:
        # gzip only text that is worth it; mtime=0 keeps the bytes stable across restarts
        zipped = None
        if media_type.startswith(("application/json", "text/", "image/svg")) and len(body) > 256:
            zipped = gzip.compress(body, compresslevel=6, mtime=0)
            if len(zipped) >= len(body):
                zipped = None
        return cls(body, zipped, f'"{content_hash(body)}"', media_type)

    @property
    def etag_gzip(self) -> str:
        return self.etag[:-1] + '-gz"'


class FileCache:
    """Dataset files read on first request, kept in LRU order within `budget` bytes.

    The files were hashed at startup (backend.catalog.FileRef): the caller compares that hash
    with the loaded blob's ETag, so a file regenerated while the server runs is served under its
    new ETag without the startup version's promise of immutability.
    """

    def __init__(self, budget: int = 256 * 2**20):
        self.budget = budget
        self.size = 0
        self.blobs: OrderedDict[Path, Blob] = OrderedDict()

    def get(self, path: Path) -> Blob | None:
        blob = self.blobs.get(path)
        if blob is not None:
            self.blobs.move_to_end(path)
        return blob

    def load(self, path: Path) -> Blob:
        """Read a file (blocking: the caller runs this off the event loop)."""
        return Blob.of(path.read_bytes(), media_type(path))

    def put(self, path: Path, blob: Blob) -> None:
        if path in self.blobs or len(blob.body) > self.budget:
            return
        self.blobs[path] = blob
        self.size += len(blob.body)
        while self.size > self.budget:
            _, old = self.blobs.popitem(last=False)
            self.size -= len(old.body)
