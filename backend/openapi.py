"""What the OpenAPI schema says each route answers (handlers return ready bytes, so FastAPI
cannot infer it): the dataset contract's models for 200, our error shape for 404 and 422,
image media types for the files. /docs shows these; the fuzz test checks them."""

from __future__ import annotations

from pydantic import BaseModel

from contract.schema import DatasetManifest, DatasetStats, PaintingRecord, PaintingSummary


class ErrorDetail(BaseModel):
    status: int
    code: str  # bad_request, not_found, method_not_allowed, uri_too_long, invalid, internal
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    datasets: list[str]


class DatasetEntry(BaseModel):
    id: str
    name: str
    description: str | None = None
    label: str | None = None
    n_paintings: int
    version: str  # hash of the dataset's content: `?v=<version>` URLs are cached as immutable
    has_stats: bool  # whether /api/datasets/{ds}/stats exists (the explorer skips it otherwise)


class DatasetList(BaseModel):
    datasets: list[DatasetEntry]


class PaintingPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[PaintingSummary]


ERRORS = {404: {"model": ErrorBody, "description": "unknown dataset, painting or file"},
          422: {"model": ErrorBody, "description": "malformed id, index or parameter"}}


def json_ok(model: type[BaseModel]) -> dict:
    return {200: {"model": model}, **ERRORS}


def image_ok(*media: str) -> dict:
    return {200: {"content": {m: {} for m in media}, "description": "the image"}, **ERRORS}


MANIFEST = json_ok(DatasetManifest)
STATS = json_ok(DatasetStats)
RECORD = json_ok(PaintingRecord)
PAGE = json_ok(PaintingPage)
PNG = image_ok("image/png")
PICTURE = image_ok("image/jpeg", "image/png", "image/webp")
