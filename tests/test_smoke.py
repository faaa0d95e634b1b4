"""The embedded smoke dataset: rebuilt by one command, byte for byte, labelled, small."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from contract.store import Dataset
from contract.validate import validate_dataset
from precompute import smoke

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "data" / "smoke"
COMMITTED_PAINTINGS = REPO / "data" / "smoke-paintings"


def build(tmp: Path) -> tuple[Path, Path]:
    """Build as `make smoke-dataset` does, from a process whose own numerics are not pinned
    (torch loaded, the fastest kernels asked for): the build must pin them itself."""
    out, paintings = tmp / "smoke", tmp / "smoke-paintings"
    unpinned = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AUTO"}
    saved = {k: os.environ.get(k) for k in unpinned}
    os.environ.update(unpinned)
    try:
        assert smoke.run(argparse.Namespace(out=out, paintings=paintings, max_new_tokens=40)) == 0
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return out, paintings


def files(root: Path) -> dict[str, bytes]:
    # index.sqlite is a cache named by file identities (contract/index.py), not part of the bytes
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "index.sqlite"}


def differing(a: Path, b: Path) -> list[str]:
    fa, fb = files(a), files(b)
    return sorted(set(fa) ^ set(fb)) + [name for name in fa if name in fb and fa[name] != fb[name]]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("smoke"))


def test_rebuild_is_byte_identical(rebuilt, tmp_path):
    out, paintings = rebuilt
    if COMMITTED.is_dir():
        reference, reference_paintings = COMMITTED, COMMITTED_PAINTINGS
    else:  # before data/smoke is committed: two builds must agree
        reference, reference_paintings = build(tmp_path)
    assert differing(reference_paintings, paintings) == []
    assert differing(reference, out) == [], "rebuild with `make smoke-dataset` and commit data/smoke"


def test_labelled_small_and_valid(rebuilt):
    out, paintings = rebuilt
    assert validate_dataset(out, paintings) == []  # and it matches its input folder
    manifest = Dataset(out).manifest()
    assert "random-weight" in manifest.label and "noise" in manifest.label
    assert {m.id for m in manifest.models.values()} == {"tiny-random-captioner", "tiny-random-segmenter", "lexicon"}
    assert len(manifest.paintings) == 4 and manifest.failures == []
    assert sum(len(b) for b in files(out).values()) < 10 * 2**20
    assert max(len(b) for b in files(out).values()) < 2 * 2**20
    text = b"".join(b for name, b in files(out).items() if name.endswith(".json"))
    assert b"/tmp" not in text and b"tamscope-smoke-" not in text  # no machine paths
