"""Model loading: device and dtype choice, offline-first, Qwen2.5-VL as well as Qwen2-VL."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch
from PIL import Image

from precompute.models import ModelNotAvailable, load_captioner, offline_mode, resolve_device, resolve_dtype
from precompute.stages import describe
from tamscope.store import Dataset
from tamscope.validate import validate_dataset

torch.set_num_threads(1)


def test_device_and_dtype_defaults():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32  # bf16 decode is slower on CPUs (docs/precompute.md)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16 and resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int3", cpu)
    assert resolve_device("cpu") == cpu
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_offline_unless_asked(monkeypatch):
    monkeypatch.delenv("TAMSCOPE_ONLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert offline_mode() is True and os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("TAMSCOPE_ONLINE", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert offline_mode() is False and "HF_HUB_OFFLINE" not in os.environ


def test_a_text_only_model_is_refused_by_name(tmp_path):
    from precompute.tiny.textlm import build_tiny_text_lm

    folder = build_tiny_text_lm(tmp_path / "text-lm")
    with pytest.raises(ModelNotAvailable, match="qwen3.*needs Qwen2-VL or Qwen2.5-VL"):
        load_captioner(str(folder), device="cpu")


def test_qwen2_5_vl_describes_end_to_end(tmp_path):
    from precompute.tiny.qwen2vl import build_tiny_qwen2vl

    model_dir = build_tiny_qwen2vl(tmp_path / "tiny-qwen2.5-vl", family="qwen2_5_vl")
    assert type(load_captioner(str(model_dir), device="cpu").model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    paintings = tmp_path / "in"
    paintings.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (336, 448, 3), dtype=np.uint8)).save(paintings / "wide.png")
    parser = argparse.ArgumentParser()
    describe.configure(parser)
    out = tmp_path / "ds"
    args = parser.parse_args([str(paintings), str(out), "--model", str(model_dir), "--max-new-tokens", "10",
                              "--device", "cpu"])
    assert describe.run(args) == 0
    rec = Dataset(out).record("wide")
    # 448x336 is under the default 256*28*28 pixels: scaled up to 14x19 cells (tests/test_describe.py)
    assert (rec.grid.h, rec.grid.w) == (14, 19) and 1 <= len(rec.tokens) <= 10
    assert "".join(t.text for t in rec.tokens) == rec.caption
    assert validate_dataset(out) == []
