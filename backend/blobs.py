"""Bytes ready to send, and the bounded cache that keeps the ones made on demand.

A `Blob` carries everything a response needs so that handlers do no work per request: the
body, a gzip variant for text, a strong ETag (content hash) and the media type. Dataset
files are hashed once at startup (backend.catalog) and read on first use; they and the
gallery's pages share one `BlobCache`, which keeps the most recently used within one byte
budget (`--cache-mb`).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import PurePath

log = logging.getLogger("tamscope.serve")

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".json": "application/json", ".js": "text/javascript", ".mjs": "text/javascript",
               ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml", ".ico": "image/x-icon"}


def media_type(path: PurePath) -> str:
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


class BlobCache:
    """Blobs in LRU order within `budget` bytes (bodies and gzip variants both count).

    Keys say what a blob is: a dataset file (backend.catalog.FileRef, whose startup hash the
    caller compares with the blob's ETag, so that a file regenerated while the server runs is
    not served under the startup version's promise of immutability) or a gallery query.
    """

    def __init__(self, budget: int = 256 * 2**20):
        self.budget = budget
        self.size = 0
        self.blobs: OrderedDict[Hashable, Blob] = OrderedDict()

    @staticmethod
    def cost(blob: Blob) -> int:
        return len(blob.body) + len(blob.gzipped or b"")

    def get(self, key: Hashable) -> Blob | None:
        blob = self.blobs.get(key)
        if blob is not None:
            self.blobs.move_to_end(key)
        return blob

    def put(self, key: Hashable, blob: Blob) -> None:
        if key in self.blobs or self.cost(blob) > self.budget:
            return
        self.blobs[key] = blob
        self.size += self.cost(blob)
        while self.size > self.budget:
            _, old = self.blobs.popitem(last=False)
            self.size -= self.cost(old)
