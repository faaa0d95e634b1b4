"""Large checkpoints spread with accelerate (`--device-map`): TAM reads the LM head and the final
norm's output wherever they were placed. On this CPU-only test machine the split is CPU memory
plus disk offload (the LM head and the last decoder layer on disk: meta tensors outside a
forward pass); the maps and the caption must be those of the model loaded whole."""

from __future__ import annotations

import argparse

import pytest
import torch

from precompute.models import Lazy, load_captioner
from precompute.placement import parse_device_map
from precompute.smoke import write_smoke_paintings
from precompute.stages import describe
from testkit.harness import stage_args

torch.set_num_threads(1)

SPLIT = {"model.visual": "cpu", "model.language_model.embed_tokens": "cpu",
         "model.language_model.layers.0": "cpu", "model.language_model.layers.1": "disk",
         "model.language_model.norm": "cpu", "model.language_model.rotary_emb": "cpu", "lm_head": "disk"}


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_split_and_offloaded_model_gives_the_same_caption_and_maps(tiny_qwen2vl_dir, tmp_path, variant):
    whole = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float32")
    split = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float32", device_map=SPLIT,
                           offload_folder=str(tmp_path / "offload"))
    assert split.model.lm_head.weight.device.type == "meta"  # offloaded: only its hook holds the weights
    assert split.device.type == "cpu"
    folder = write_smoke_paintings(tmp_path / "paintings")
    from contract.inputs import scan_input

    painting = scan_input(folder).paintings[0]
    args = stage_args(describe, [folder, tmp_path / "ds", "--max-new-tokens", 10, "--tam-variant", variant,
                                 "--device", "cpu"])
    a = describe.describe_one(painting, args, Lazy.holding(whole, "describe"))
    b = describe.describe_one(painting, args, Lazy.holding(split, "describe"))
    assert a.record.caption == b.record.caption and len(a.record.tokens) > 0
    assert [t.id for t in a.record.tokens] == [t.id for t in b.record.tokens]
    for name in a.files:
        if name.startswith("tokens/"):
            assert a.files[name] == b.files[name], name
    assert a.files["tam_raw.safetensors"] == b.files["tam_raw.safetensors"]


def test_device_map_option():
    assert parse_device_map(None) is None and parse_device_map("auto") == "auto"
    assert parse_device_map('{"lm_head": "disk"}') == {"lm_head": "disk"}
    for bad in ("everywhere", "[1, 2]", "{}"):
        with pytest.raises(SystemExit, match="--device-map"):
            parse_device_map(bad)
    parser = argparse.ArgumentParser()
    describe.configure(parser)
    assert parser.parse_args(["in", "out", "--device-map", "auto"]).device_map == "auto"
