"""The paper authors' project-page data (nicolafan/tamart, branch gh-pages), as pydantic models.

    assets/data/index.json             {"paintings": [{"stem": ..., ...}, ...]}
    assets/data/paintings/<stem>.json  PublishedPainting
    assets/img/<stem>.jpg              the painting (the JSON's `image`)
    assets/masks/<name>.png            SAM 3 masks (a span's `sam`)

The mirror (sources.tamart_site) and the importer (sources.tamart_import) both read the data
through this module, so what the mirror keeps the importer can read, and a broken or hostile
file fails with one clear message instead of a KeyError or TypeError deep inside.
Everything in these files comes from the network: stems must be painting ids (the full id
rule, so they can name folders), file names plain relative names under assets/, numbers
within the bounds below, and a stem may appear only once, compared without case (two
stems differing only in case would be one folder on a case-insensitive file system).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from contract.schema import Category, is_valid_id

INDEX = "assets/data/index.json"
MASKS = "assets/masks"
MAX_FILE_BYTES = 32 << 20  # per file; the largest published file is about 0.3 MB
MAX_SIDE = 50_000  # pixels per image side (the pixel count is limited by contract.images)
MAX_GRID = 1024  # vision grid cells per side (Qwen2-VL at its largest input: ~ 300)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}")  # one path part: no "..", no leading dot


def painting_json(stem: str) -> str:
    return f"assets/data/paintings/{stem}.json"


def _plain_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"file name {shown(value)} is not a plain name")
    return value


def safe_asset_path(rel: object) -> str:
    """A relative POSIX path under assets/ made of plain names (no '..', not absolute)."""
    if not isinstance(rel, str):
        raise ValueError(f"file name {shown(rel)} is not a string")
    parts = PurePosixPath(rel).parts
    if (len(parts) < 2 or parts[0] != "assets" or not all(_NAME_RE.fullmatch(p) for p in parts[1:])
            or "/".join(parts) != rel):  # PurePosixPath drops "." parts and doubled slashes
        raise ValueError(f"file name {shown(rel)} is not a plain path under assets/")
    return rel


class Loose(BaseModel):
    """Their format may gain fields: unknown keys are ignored; known ones are strictly typed."""

    model_config = ConfigDict(extra="ignore", strict=True)


class Segment(Loose):
    t: str  # a piece of the caption
    s: int | None = None  # the span it highlights, or -1


class PublishedSpan(Loose):
    word: str = ""
    cat: Category
    map: str  # base64 of grid_h * grid_w uint8 values, row-major
    sam: Annotated[str, AfterValidator(_plain_name)] | None = None  # mask file under assets/masks/
    sam_n: int | None = Field(default=None, ge=0, le=10_000)


class Verdicts(Loose):
    title_pred: str | None = None
    artist_pred: str | None = None
    title_correct: bool | None = None
    artist_correct: bool | None = None


class PublishedPainting(Loose):
    stem: str
    image: Annotated[str, AfterValidator(safe_asset_path)]
    w: int = Field(gt=0, le=MAX_SIDE)
    h: int = Field(gt=0, le=MAX_SIDE)
    grid_h: int = Field(gt=0, le=MAX_GRID)
    grid_w: int = Field(gt=0, le=MAX_GRID)
    caption: str
    segments: list[Segment] = []
    spans: list[PublishedSpan] = []
    gt_title: str | None = None
    gt_artist: str | None = None
    year: Annotated[int, Field(ge=-10_000, le=10_000)] | str | None = None
    style: str | None = None
    genre: str | None = None
    meta: Verdicts | None = None

    def mask_paths(self) -> list[str]:
        """The mask files its spans name, in span order, once each."""
        return list(dict.fromkeys(f"{MASKS}/{span.sam}" for span in self.spans if span.sam))


class _Index(Loose):
    paintings: list[Any] = Field(min_length=1)  # entries are checked one by one (read_index)


def shown(value: object) -> str:
    """A value from the data, for a message: quoted, escaped (no terminal control codes), short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def explain(err: ValidationError) -> str:
    """A ValidationError in one line: where and what, for the first three problems."""
    parts = []
    for e in err.errors()[:3]:
        if e["type"] == "json_invalid":
            parts.append(f"not valid JSON ({e['ctx']['error']})")
        else:
            parts.append(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg'].removeprefix('Value error, ')}")
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def read_painting(stem: str, data: bytes) -> PublishedPainting:
    """The painting JSON of `stem` from its bytes; ValueError naming the problem (not the file)."""
    try:
        painting = PublishedPainting.model_validate_json(data)
    except ValidationError as err:
        raise ValueError(explain(err)) from None
    if painting.stem != stem:
        raise ValueError(f"it is the JSON of painting {shown(painting.stem)}")
    return painting


def read_index(data: bytes) -> tuple[list[str], dict[str, str]]:
    """(stems to use, in index order; {entry: why it is refused}) from index.json's bytes.

    ValueError (naming the problem, not the file) when it is not a painting index at all. A refused entry (not a valid id,
    or the same stem as an earlier entry up to case) leaves the others usable.
    """
    try:
        index = _Index.model_validate_json(data)
    except ValidationError as err:
        raise ValueError(f"not a painting index: {explain(err)}") from None
    stems: list[str] = []
    refused: dict[str, str] = {}
    seen: dict[str, str] = {}  # casefolded stem -> the stem listed first
    for n, entry in enumerate(index.paintings):
        stem = entry.get("stem") if isinstance(entry, dict) else None
        if not is_valid_id(stem):
            refused[f"entry {n}"] = f"index entry {n}: stem {shown(stem)} is not a valid painting id"
        elif stem.casefold() in seen:
            refused[f"entry {n}"] = f"index entry {n}: stem {stem!r} collides with {seen[stem.casefold()]!r} (listed earlier)"
        else:
            seen[stem.casefold()] = stem
            stems.append(stem)
    return stems, refused
