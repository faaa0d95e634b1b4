"""The model comparison's server side (backend/compare.py): a painting's counterparts in the other
served datasets, matched by the input image's fingerprint or, without one, by id; ids only.

Expected fingerprints are the SHA-256 of the canvases read here (the fixture's input is its canvas)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.compare import Counterparts, match_kind
from contract.store import Dataset
from testkit.fixture_dataset import CAPTION_B, SPANS_B, make_dataset


def rewrite(root, pid, change):
    ds = Dataset(root)
    record = ds.record(pid)
    ds.save_record(record.model_copy(update={"provenance": change(dict(record.provenance))}))
    ds.refresh_manifest()


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    a = make_dataset(base / "model-a", n_paintings=4, captioner="tiny-a", fingerprints=True, with_stats=False)
    # model B: painting 3 under another name (the same image: matched by fingerprint)
    b = make_dataset(base / "model-b", n_paintings=4, seed=1, captioner="tiny-b", fingerprints=True, caption=CAPTION_B, phrases=SPANS_B,
                     ids={3: "harbour-renamed"}, with_stats=False)
    # C: painting-0 is another image under the same name; painting-1 has no fingerprint (imported data)
    c = make_dataset(base / "imported", n_paintings=2, with_stats=False, fingerprints=True)
    rewrite(c, "painting-0", lambda p: {**p, "input": {"file": "x.jpg", "sha256": "0" * 64}})
    rewrite(c, "painting-1", lambda p: {k: v for k, v in p.items() if k != "input"})
    return {"a": a, "b": b, "c": c}


@pytest.fixture(scope="module")
def client(roots):
    return TestClient(create_app([roots["a"], roots["b"], roots["c"]]))


def sha(root, pid) -> str:
    return hashlib.sha256((root / "paintings" / pid / "canvas.jpg").read_bytes()).hexdigest()


def test_counterparts_by_fingerprint_and_by_id(client, roots):
    body = client.get("/api/datasets/model-a/paintings/painting-3/counterparts").json()
    Counterparts.model_validate(body)  # what /openapi.json says it answers
    assert body["input_sha256"] == sha(roots["a"], "painting-3") == sha(roots["b"], "harbour-renamed")
    assert body["captioner"] == {"id": "tiny-a", "revision": "fixture"}
    assert [(c["dataset"], c["painting"], c["match"]) for c in body["counterparts"]] == [
        ("model-b", "harbour-renamed", "input")]
    assert body["counterparts"][0]["captioner"]["id"] == "tiny-b"
    assert body["counterparts"][0]["summary"]["id"] == "harbour-renamed"
    # painting-0: B's painting-0 (same image); C's painting-0 is another image under that name
    found = client.get("/api/datasets/model-a/paintings/painting-0/counterparts").json()["counterparts"]
    assert [(c["dataset"], c["painting"], c["match"]) for c in found] == [("model-b", "painting-0", "input")]
    # painting-1: C's has no fingerprint, so its name decides
    found = client.get("/api/datasets/model-a/paintings/painting-1/counterparts").json()["counterparts"]
    assert [(c["dataset"], c["painting"], c["match"]) for c in found] == [
        ("model-b", "painting-1", "input"), ("imported", "painting-1", "id")]
    assert found[1]["captioner"] is None  # the fixture's manifest names no captioner by default
    # and from the other side: the renamed painting finds painting-3
    found = client.get("/api/datasets/model-b/paintings/harbour-renamed/counterparts").json()["counterparts"]
    assert [(c["dataset"], c["painting"]) for c in found] == [("model-a", "painting-3")]
    # C's painting-0 is no other dataset's image, whatever its name
    none = client.get("/api/datasets/imported/paintings/painting-0/counterparts").json()
    assert none["input_sha256"] == "0" * 64 and none["counterparts"] == []


def test_counterparts_caching_is_revalidation_only(client, roots):
    version = {d["id"]: d["version"] for d in client.get("/api/datasets").json()["datasets"]}["model-a"]
    r = client.get(f"/api/datasets/model-a/paintings/painting-0/counterparts?v={version}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    again = client.get("/api/datasets/model-a/paintings/painting-0/counterparts",
                       headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path,status", [
    ("/api/datasets/model-a/paintings/nope/counterparts", 404),
    ("/api/datasets/nope/paintings/painting-0/counterparts", 404),
    ("/api/datasets/model-a/paintings/..%2Fmodel-b/counterparts", 404),  # a "/": no such route
    ("/api/datasets/model-a/paintings/.hidden/counterparts", 422),
    ("/api/datasets/model-a/paintings/" + "x" * 129 + "/counterparts", 422),
    ("/api/datasets/model-a/paintings/a%20b/counterparts", 422),
    ("/api/datasets/model-a/paintings/painting-0%0A/counterparts", 422),
    ("/api/datasets/..%2F..%2Fetc/paintings/painting-0/counterparts", 404),
    ("/api/datasets/model-a/paintings/..%2E/counterparts", 422),
])
def test_malformed_or_unknown_ids(client, path, status):
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["error"]["status"] == status


def test_match_rule_by_hand():
    s1, s2 = "a" * 64, "b" * 64
    assert match_kind("p", s1, "q", s1) == "input"  # same bytes, any name
    assert match_kind("p", s1, "p", s2) is None  # same name, another image
    assert match_kind("p", None, "p", s2) == "id"
    assert match_kind("p", s1, "p", None) == "id"
    assert match_kind("p", None, "q", None) is None


def test_index_keeps_only_real_fingerprints(tmp_path):
    from contract import index as ix

    root = make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False, fingerprints=True)
    rewrite(root, "painting-1", lambda p: {**p, "input": {"file": "x", "sha256": "not a hash'; DROP TABLE x"}})
    ix.ensure_index(root)
    with ix.connect(root / ix.INDEX) as conn:
        got = dict(conn.execute("SELECT id, input_sha256 FROM paintings").fetchall())
    assert got == {"painting-0": sha(root, "painting-0"), "painting-1": None}


def test_static_export_keeps_the_fingerprints(roots):
    import orjson

    from backend.site_search import search_files

    files = search_files(roots["b"])
    meta = orjson.loads(files["meta.json"])
    ids = orjson.loads(files["ids.json"])
    want = {pid: sha(roots["b"], pid) for pid in ids}
    got = {}
    for shard in meta["input_shards"]:
        for fingerprint, positions in orjson.loads(files[f"inputs/{shard}.json"]).items():
            assert fingerprint.startswith(shard)
            got.update({ids[p]: fingerprint for p in positions})
    assert got == want and len(set(want.values())) == 4
