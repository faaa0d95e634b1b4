"""The dataset contract: pydantic models for every JSON file of a dataset folder.

A dataset is one folder (docs/data-format.md is the prose version of this module):

    DATASET/
      manifest.json                      DatasetManifest
      stats.json                         DatasetStats (written by `tamscope stats`)
      paintings/<id>/record.json         PaintingRecord
      paintings/<id>/canvas.<jpg|png>    the image the maps align to
      paintings/<id>/thumb.jpg           gallery thumbnail
      paintings/<id>/tokens/<i>.png      8-bit map of generated token i on the vision grid
      paintings/<id>/spans/<i>.png       8-bit map of span i on the vision grid
      paintings/<id>/sam/<i>.png         SAM 3 union mask of span i at canvas size
      paintings/<id>/methods/<m>/<i>.png 8-bit map of span i by method m (faithfulness stage)
      paintings/<id>/tam_raw.safetensors raw float maps and normalisation constants (optional)

Every path inside a JSON file is relative to the painting folder (records) or to the
dataset folder (manifest), and is checked by `tamscope validate` to stay inside it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

# Ids name folders and appear in URLs: a conservative alphabet, no leading dot (so never "..").
# ID_PATTERN is for pydantic, FastAPI and JavaScript, whose `$` is the end of the text. In
# Python `$` also matches before a final "\n", so Python code checks ids with is_valid_id
# (a full match), never with re.match.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
PaintingId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def is_valid_id(value: object) -> bool:
    """The id rule: a string of 1-128 characters of [A-Za-z0-9._-], not starting with . _ -."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


_REL_PATH_RE = re.compile(r"[A-Za-z0-9._/-]{1,255}")


def _relative_path(value: str) -> str:
    """A relative POSIX path inside its folder: no "..", no absolute root, no backslash."""
    parts = value.split("/")
    if not _REL_PATH_RE.fullmatch(value) or value.startswith("/") or ".." in parts or "" in parts:
        raise ValueError(f"{value!r} is not a relative path inside the folder")
    return value


RelPath = Annotated[str, AfterValidator(_relative_path)]


class Category(StrEnum):
    """Span categories of the paper."""

    CVO = "CVO"  # concrete visual object
    ICON = "ICON"  # named iconographic figure
    STYLE = "STYLE"
    AFFECT = "AFFECT"
    META = "META"  # artist, title, date


SEGMENTABLE = (Category.CVO, Category.ICON)  # categories SAM 3 is run on


class Strict(BaseModel):
    """Base: unknown keys are violations, so typos in producers are caught by `validate`."""

    model_config = ConfigDict(extra="forbid")


class ModelRef(Strict):
    id: str  # hub id or local folder name
    revision: str | None = None  # commit hash or "local"


class Annotations(Strict):
    """Ground truth about a painting, from the input annotations file (all optional)."""

    title: str | None = None
    artist: str | None = None
    year: int | str | None = None
    style: str | None = None
    genre: str | None = None


class ImageRef(Strict):
    path: RelPath
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class Grid(Strict):
    """The merged vision grid the maps live on (Qwen2-VL: patch grid / 2 per side)."""

    h: int = Field(gt=0)
    w: int = Field(gt=0)


class MapRef(Strict):
    """An 8-bit grayscale PNG of grid size and the float range it was stretched from.

    value ≈ lo + png / 255 * (hi - lo). For token maps lo/hi are the TAM normalisation
    constants (min and max over the ECI map and the text relevance); for span maps they
    are the min and max of the mean token map before it was stretched to 0..255.
    """

    png: RelPath
    lo: float
    hi: float


class SpanMetrics(Strict):
    """Localisation metrics of a span map (definitions in docs/metrics.md)."""

    entropy: float | None = Field(default=None, ge=0, le=1)  # normalised spatial entropy
    gini: float | None = Field(default=None, ge=0, le=1)
    top10_mass: float | None = Field(default=None, ge=0, le=1)  # share of mass in the top 10% cells


class SamResult(Strict):
    """SAM 3 on the span text. mask is None when nothing was detected (then iou is None)."""

    mask: RelPath | None = None
    instances: int = Field(ge=0)
    scores: list[float] = []
    iou: float | None = Field(default=None, ge=0, le=1)  # Otsu mask vs SAM mask


METHOD_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"  # a map method's name (faithfulness stage): also a folder and URL part


def _curves_agree(curves):
    """Deletion and insertion (and their areas) are set together, of one length, or all null."""
    if (curves.deletion is None) != (curves.insertion is None):
        raise ValueError("deletion and insertion are both set or both null")
    if curves.deletion is not None and len(curves.deletion) != len(curves.insertion or []):
        raise ValueError("deletion and insertion have different lengths")
    if (curves.deletion is None) != (curves.deletion_area is None) or (curves.deletion is None) != (
            curves.insertion_area is None):
        raise ValueError("areas are set exactly when the curves are")
    return curves


class MethodResult(Strict):
    """One method's map of a span and how faithful it is (docs/faithfulness.md).

    deletion / insertion: the normalised curves at the fractions j / steps of the canvas's pixels
    (j = 0 .. steps); null (and the areas null) when the tokens score the same with the image and
    with the baseline. Lower deletion and higher insertion areas mean a more faithful map."""

    map: MapRef
    tokens: list[int] = []  # the tokens the map explains (igos: those its score used)
    deletion: list[float] | None = None
    insertion: list[float] | None = None
    deletion_area: float | None = None
    insertion_area: float | None = None

    @model_validator(mode="after")
    def _curves(self) -> MethodResult:
        return _curves_agree(self)


class TokenFaithfulness(Strict):
    """Deletion and insertion of one caption token (`tamscope faithfulness --per-token`): the
    canvas's pixels ranked by the token's own map (Token.map, made by `method`: the dataset's TAM
    variant), the score the token's log-likelihood under teacher forcing; the curves as in
    MethodResult."""

    method: Annotated[str, StringConstraints(pattern=METHOD_PATTERN)]  # whose map: "tam-reference", ...
    score_original: float  # log-likelihood of the token with the canvas
    score_baseline: float  # with the blurred canvas
    steps: int = Field(ge=1)
    deletion: list[float] | None = None
    insertion: list[float] | None = None
    deletion_area: float | None = None
    insertion_area: float | None = None

    @model_validator(mode="after")
    def _curves(self) -> TokenFaithfulness:
        if self.deletion is not None and len(self.deletion) != self.steps + 1:
            raise ValueError(f"{len(self.deletion)} curve points for {self.steps} steps")
        return _curves_agree(self)


class Token(Strict):
    index: int = Field(ge=0)
    id: int | None = None  # tokenizer id (None for imported data)
    text: str
    start: int = Field(ge=0)  # character offsets into the caption, end exclusive
    end: int = Field(ge=0)
    map: MapRef | None = None
    reliance: float | None = None  # log P(tok | image) - log P(tok | blurred image)
    visual: bool | None = None  # reliance above the dataset's threshold
    faithfulness: TokenFaithfulness | None = None  # the faithfulness stage with --per-token (optional)


class SpanFaithfulness(Strict):
    """Deletion and insertion of the span's tokens (their summed log-likelihood under teacher
    forcing) for the map of every method (`methods`: method name -> result)."""

    score_original: float  # log-likelihood of the span's tokens with the canvas
    score_baseline: float  # with the blurred canvas
    steps: int = Field(ge=1)
    methods: dict[Annotated[str, StringConstraints(pattern=METHOD_PATTERN)], MethodResult] = {}


class Span(Strict):
    """A typed phrase. `text` is exactly caption[start:end]; `match` says how it was found for the
    phrase the span classifier named (contract/phrasealign.py), `phrase` holds that phrase when it
    differs from `text`, `similarity` the word similarity of an approximate match. Imported data
    may hold phrases the span classifier named that the caption does not contain: they keep their
    map and metrics with start = end = None and the phrase as `text`. The three match fields are
    absent in datasets written before they existed."""

    index: int = Field(ge=0)
    text: str
    start: int | None = Field(default=None, ge=0)
    end: int | None = Field(default=None, ge=0)
    match: Literal["exact", "repaired", "approximate"] | None = None
    similarity: float | None = Field(default=None, ge=0, le=1)
    phrase: str | None = None
    category: Category
    tokens: list[int] = []  # indices into PaintingRecord.tokens
    map: MapRef | None = None
    otsu_threshold: int | None = Field(default=None, ge=0, le=255)
    metrics: SpanMetrics | None = None
    sam: SamResult | None = None
    faithfulness: SpanFaithfulness | None = None  # the faithfulness stage (optional)

    @property
    def located(self) -> bool:
        return self.start is not None

    @model_validator(mode="after")
    def _both_offsets_or_none(self) -> Span:
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end are both set or both null")
        if self.start is None and self.tokens:
            raise ValueError("a span not located in the caption cannot cover tokens")
        if self.start is None and (self.match or self.phrase is not None):
            raise ValueError("a span not located in the caption has no match and keeps its phrase as text")
        if (self.similarity is not None) != (self.match == "approximate"):
            raise ValueError("similarity is set for an approximate match and only for one")
        return self


class MetadataVerdict(Strict):
    """The title/artist the caption claims, graded against the annotations."""

    title_claimed: str | None = None
    artist_claimed: str | None = None
    title_correct: bool | None = None  # the verdict shown (judge when present, else string match)
    artist_correct: bool | None = None
    title_string_match: bool | None = None
    artist_string_match: bool | None = None
    judge: dict[str, Any] | None = None  # {"title": bool|None, "artist": bool|None, "raw": str}
    source: str = "pipeline"


class StageStamp(Strict):
    """That a stage finished for a painting, with the settings it ran with (for resuming)."""

    settings: dict[str, Any] = {}
    finished: str  # ISO 8601 UTC


class Failure(Strict):
    stage: str
    error: str
    painting: str | None = None
    time: str | None = None


class PaintingRecord(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: PaintingId
    source_file: str | None = None  # the input file name, for the user's orientation only
    annotations: Annotations = Annotations()
    canvas: ImageRef | None = None
    thumb: ImageRef | None = None
    grid: Grid | None = None
    prompt: str | None = None
    caption: str | None = None
    tokens: list[Token] = []
    spans: list[Span] = []
    metadata: MetadataVerdict | None = None
    stages: dict[str, StageStamp] = {}
    failures: list[Failure] = []
    provenance: dict[str, Any] = {}

    @model_validator(mode="after")
    def _offsets_inside_caption(self) -> PaintingRecord:
        n = len(self.caption or "")
        for kind, items in (("tokens", self.tokens), ("spans", self.spans)):
            for pos, item in enumerate(items):
                if item.index != pos:
                    raise ValueError(f"{kind}[{pos}].index is {item.index}, expected {pos}")
                if item.start is not None and not (item.start <= item.end <= n):
                    raise ValueError(f"{kind}[{pos}] offsets {item.start}..{item.end} outside caption of {n} chars")
        for span in self.spans:
            bad = [t for t in span.tokens if not 0 <= t < len(self.tokens)]
            if bad:
                raise ValueError(f"spans[{span.index}].tokens {bad} are not token indices")
        return self


class PaintingSummary(Strict):
    """One gallery entry of the manifest: enough to list, filter and search without records."""

    id: PaintingId
    title: str | None = None
    artist: str | None = None
    year: int | str | None = None
    style: str | None = None
    genre: str | None = None
    thumb: RelPath | None = None  # relative to the dataset folder
    status: Literal["ok", "failed"] = "ok"
    n_tokens: int = 0
    n_spans: int = 0
    n_sam: int = 0
    categories: dict[Category, int] = {}
    caption: str | None = None  # full caption, so gallery search works without fetching records


class Attribution(Strict):
    """Whose data it is and on which terms: every page that shows the dataset says so."""

    text: str  # e.g. "Data: Fanelli et al., Understanding How MLLMs Describe Artworks ..."
    url: str | None = Field(default=None, pattern=r"^https?://")  # where the authors published it
    licence: str | None = None  # e.g. "MIT"


class DatasetManifest(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    description: str = ""
    label: str | None = None  # shown on every page, e.g. "made by random-weight test models"
    attribution: Attribution | None = None  # credit and licence of data made by others
    created: str  # ISO 8601 UTC
    models: dict[str, ModelRef] = {}  # role ("captioner", "span_classifier", "segmenter") -> model
    prompt: str | None = None
    settings: dict[str, dict[str, Any]] = {}  # stage name -> settings it ran with
    provenance: dict[str, Any] = {}
    paintings: list[PaintingSummary] = []
    failures: list[Failure] = []

    @field_validator("paintings")
    @classmethod
    def _unique_ids(cls, paintings: list[PaintingSummary]) -> list[PaintingSummary]:
        seen: set[str] = set()
        for p in paintings:
            if p.id in seen:
                raise ValueError(f"painting id {p.id!r} appears twice")
            seen.add(p.id)
        return paintings


class DatasetStats(BaseModel):
    """stats.json: one object per category name (CVO, ICON, ...) at the top level, plus
    `tests`, `metadata`, `n_paintings`, `n_spans` (docs/metrics.md lists every field)."""

    model_config = ConfigDict(extra="allow")
    schema_version: Literal[1] = SCHEMA_VERSION
    n_paintings: int = 0
    n_spans: int = 0
    tests: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
