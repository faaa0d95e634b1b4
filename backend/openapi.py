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


class Facets(BaseModel):
    n_paintings: int
    categories: dict[str, int]  # category -> paintings with a span of it
    styles: list[tuple[str, int]]  # [name, paintings], most frequent first (500 at most)
    artists: list[tuple[str, int]]  # likewise (2,000 at most)
    years: dict[str, int | None]  # {"min", "max"}
    sam: dict[str, int]  # {"found", "none"}
    title_verdict: dict[str, int]  # {"correct", "wrong", "ungraded"}
    artist_verdict: dict[str, int]


class AtlasSummary(BaseModel):
    n: int
    median_entropy: float | None
    n_entropy: int
    median_iou: float | None
    n_iou: int


class CategorySummary(BaseModel):
    n: int
    median_entropy: float | None
    median_iou: float | None
    n_iou: int


class AtlasItem(BaseModel):
    painting: str
    title: str | None
    artist: str | None
    year: str | None
    thumb: str | None  # relative to the dataset folder
    canvas: dict[str, int] | None
    index: int
    text: str
    category: str
    start: int | None
    end: int | None
    match: str | None
    entropy: float | None
    gini: float | None
    top10: float | None
    sam: bool | None
    iou: float | None
    otsu: int | None
    has_map: bool
    map: str | None  # the map's PNG, relative to the painting folder


class AtlasPage(BaseModel):
    total: int
    offset: int
    limit: int
    summary: AtlasSummary
    categories: dict[str, CategorySummary]
    items: list[AtlasItem]


class Neighbours(BaseModel):
    previous: PaintingSummary | None
    next: PaintingSummary | None
    position: int  # of the painting, from 1
    total: int


class ManifestHeader(DatasetManifest):
    """The manifest as the server sends it: without its painting list, with their number."""

    n_paintings: int


ERRORS = {404: {"model": ErrorBody, "description": "unknown dataset, painting or file"},
          422: {"model": ErrorBody, "description": "malformed id, index or parameter"}}


def json_ok(model: type[BaseModel]) -> dict:
    return {200: {"model": model}, **ERRORS}


def image_ok(*media: str) -> dict:
    return {200: {"content": {m: {} for m in media}, "description": "the image"}, **ERRORS}


MANIFEST = json_ok(ManifestHeader)
FACETS = json_ok(Facets)
ATLAS = json_ok(AtlasPage)
NEIGHBOURS = json_ok(Neighbours)
STATS = json_ok(DatasetStats)
RECORD = json_ok(PaintingRecord)
PAGE = json_ok(PaintingPage)
PNG = image_ok("image/png")
PICTURE = image_ok("image/jpeg", "image/png", "image/webp")
