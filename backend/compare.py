"""The same painting in the other served datasets, made by other models (the explorer's model
comparison, docs/api.md "Comparing models").

Two datasets hold the same painting when their records were made from the same image: the
SHA-256 of the input file's bytes that describe records (`provenance.input.sha256`, kept in the
index as `input_sha256`), whatever the painting is called. Paintings without a fingerprint
(imported data, datasets written before it was recorded) are matched by id, the name the input
file gave them; the same id with two different fingerprints is two different images and no
match. Everything is looked up in the indexes: no record is read, and a client names only ids.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel

from backend.catalog import ServedDataset
from contract.schema import DatasetManifest, PaintingSummary

MAX_PER_DATASET = 20  # one image described twice in a dataset is rare; a hundred copies is not a comparison


def captioner(manifest: DatasetManifest) -> dict | None:
    """The model that wrote a dataset's captions: the manifest's captioner (describe records it),
    else the model describe's settings name; None for a dataset that says neither."""
    ref = manifest.models.get("captioner")
    if ref is not None:
        return {"id": ref.id, "revision": ref.revision}
    model = (manifest.settings.get("describe") or {}).get("model")
    return {"id": str(model), "revision": None} if model else None


def match_kind(pid: str, sha: str | None, other_id: str, other_sha: str | None) -> str | None:
    """"input" (the same image's bytes), "id" (the same name, a fingerprint missing on one side)
    or None (not the same painting)."""
    if sha and other_sha:
        return "input" if sha == other_sha else None
    return "id" if other_id == pid else None


def counterparts(catalog: dict[str, ServedDataset], ds: str, pid: str) -> bytes | None:
    """The answer of /api/datasets/{ds}/paintings/{pid}/counterparts; None if the painting is not listed."""
    served = catalog[ds]
    listed, sha = served.index.input_sha256(pid)
    if not listed:
        return None
    found = []
    for other in catalog.values():
        if other.id == ds:
            continue
        for other_id, other_sha, summary in other.index.same_painting(pid, sha, MAX_PER_DATASET):
            kind = match_kind(pid, sha, other_id, other_sha)
            if kind is not None:
                found.append({"dataset": other.id, "painting": other_id, "match": kind,
                              "captioner": captioner(other.manifest), "summary": orjson.loads(summary)})
    return orjson.dumps({"dataset": ds, "painting": pid, "input_sha256": sha, "captioner": captioner(served.manifest),
                         "counterparts": found})


class Model(BaseModel):
    id: str
    revision: str | None


class Counterpart(BaseModel):
    dataset: str
    painting: str
    match: str  # "input" (same image bytes) or "id" (same name, a fingerprint unknown)
    captioner: Model | None
    summary: PaintingSummary


class Counterparts(BaseModel):
    dataset: str
    painting: str
    input_sha256: str | None
    captioner: Model | None
    counterparts: list[Counterpart]
