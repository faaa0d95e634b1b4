"""Fixed sets of static files known at startup: the explorer and the offline API docs.

Only names listed at startup are served, so no client input ever reaches the filesystem.
Each file's URL can carry `?v=<hash of its content>`; a request whose `v` matches is served
as immutable, anything else revalidates with the ETag.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import Response

from backend.blobs import Blob, content_hash, media_type
from backend.http import IMMUTABLE, REVALIDATE, send_blob


class Assets:
    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.hashes = {rel: content_hash(path.read_bytes())[:12] for rel, path in files.items()}
        self.blobs: dict[str, Blob] = {}  # built on first request: gzip of a 1.5 MB bundle is not free

    @classmethod
    def tree(cls, root: Path, skip=lambda rel: False) -> Assets:
        files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
        return cls({rel: p for rel, p in files.items() if not skip(rel)})

    def url(self, rel: str) -> str:
        return f"{rel}?v={self.hashes[rel]}"

    def blob(self, rel: str) -> Blob:
        if rel not in self.blobs:
            self.blobs[rel] = Blob.of(self.files[rel].read_bytes(), media_type(self.files[rel]))
        return self.blobs[rel]

    def respond(self, request: Request, rel: str, v: str | None) -> Response:
        if rel not in self.files:
            raise HTTPException(404, "no such file")
        return send_blob(request, self.blob(rel), IMMUTABLE if v == self.hashes[rel] else REVALIDATE)
