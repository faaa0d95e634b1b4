"""Shared fixtures: tiny random-weight models built once per session, the reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import REPO, SHARED, TAMART_SAMPLE  # noqa: F401 (re-exported for the tests)


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory) -> Path:
    import torch

    from precompute.tiny.qwen2vl import build_tiny_qwen2vl

    torch.set_num_threads(1)
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2vl"))


@pytest.fixture(scope="session")
def tamart_sample() -> Path:
    if not (TAMART_SAMPLE / "assets" / "data" / "index.json").is_file():
        pytest.skip(f"the published reference sample is not at {TAMART_SAMPLE} (../shared is absent)")
    return TAMART_SAMPLE


@pytest.fixture(scope="session")
def tamart_dataset(tamart_sample, tmp_path_factory) -> Path:
    """The 30 published paintings imported once per session (with stats)."""
    import argparse

    from sources import tamart_import as tamart

    out = tmp_path_factory.mktemp("tamart") / "tamart"
    assert tamart.run(argparse.Namespace(site=tamart_sample, out=out, no_stats=False)) == 0
    return out


@pytest.fixture(scope="session")
def tiny_text_lm_dir(tmp_path_factory) -> Path:
    import torch

    from precompute.tiny.textlm import build_tiny_text_lm

    torch.set_num_threads(1)
    return build_tiny_text_lm(tmp_path_factory.mktemp("tiny-text-lm"))


@pytest.fixture(scope="session")
def tiny_sam3_dir(tmp_path_factory) -> Path:
    import torch

    from precompute.tiny.sam3 import build_tiny_sam3

    torch.set_num_threads(1)
    return build_tiny_sam3(tmp_path_factory.mktemp("tiny-sam3"))
