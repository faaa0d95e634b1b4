"""Model loading: device and dtype choice (hub access: tests/test_hub.py), Qwen2.5-VL as well as Qwen2-VL."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract.store import Dataset
from contract.validate import validate_dataset
from precompute.models import ModelNotAvailable, load_captioner, resolve_device, resolve_dtype
from precompute.stages import describe

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


def test_a_text_only_model_is_refused_by_name(tmp_path):
    from precompute.tiny.textlm import build_tiny_text_lm

    folder = build_tiny_text_lm(tmp_path / "text-lm")
    with pytest.raises(ModelNotAvailable) as failure:
        load_captioner(str(folder), device="cpu")
    message = str(failure.value)
    assert "is a 'qwen3' model; tamscope's captioner families are " in message
    for listed in ("Qwen2-VL (qwen2_vl)", "Qwen2.5-VL (qwen2_5_vl)", "Qwen3-VL (qwen3_vl)", "Qwen3.5 (qwen3_5)",
                   "InternVL (internvl)", "LLaVA-OneVision (llava_onevision)"):
        assert listed in message


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
    (rec,) = Dataset(out).records()
    # 448x336 is under the default 256*28*28 pixels: scaled up to 14x19 cells (tests/test_describe.py)
    assert (rec.grid.h, rec.grid.w) == (14, 19) and 1 <= len(rec.tokens) <= 10
    assert "".join(t.text for t in rec.tokens) == rec.caption
    assert validate_dataset(out) == []


def checkpoint_without_weights(source: Path, dest: Path) -> Path:
    """The checkpoint's config, tokenizer and processor files, no weights: a refusal must come
    before the weights are read (a missing-weights error would otherwise win)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.safetensors"))
    return dest


def drop_added_tokens(folder: Path, tokens: set[str]) -> None:
    """Remove added tokens from a saved tokenizer, as in a text model's tokenizer pasted in."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in tokens]
    path.write_text(json.dumps(data, ensure_ascii=False))
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["extra_special_tokens"] = [t for t in config["extra_special_tokens"] if t not in tokens]
    path.write_text(json.dumps(config))


def test_a_tokenizer_without_the_vision_tokens_is_refused_naming_them(tiny_qwen2vl_dir, tmp_path):
    folder = checkpoint_without_weights(tiny_qwen2vl_dir, tmp_path / "broken")
    drop_added_tokens(folder, {"<|vision_start|>", "<|image_pad|>"})
    with pytest.raises(ModelNotAvailable) as failure:
        load_captioner(str(folder), device="cpu")
    message = str(failure.value)
    assert "cannot be used" in message and "lacks <|vision_start|>, <|image_pad|>" in message
    assert "weights" not in message


def test_a_placeholder_that_is_not_an_added_token_is_refused(tiny_qwen2vl_dir, tmp_path):
    """In the BPE vocabulary but not an added token: the text "<|image_pad|>" would be split."""
    folder = checkpoint_without_weights(tiny_qwen2vl_dir, tmp_path / "plain-vocab")
    drop_added_tokens(folder, {"<|image_pad|>"})
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    data["model"]["vocab"]["<|image_pad|>"] = 151655
    path.write_text(json.dumps(data, ensure_ascii=False))
    with pytest.raises(ModelNotAvailable, match=r"its tokenizer splits <\|image_pad\|> \(not added tokens\)"):
        load_captioner(str(folder), device="cpu")


def test_config_ids_that_disagree_with_the_tokenizer_are_refused(tiny_qwen2vl_dir, tmp_path):
    folder = checkpoint_without_weights(tiny_qwen2vl_dir, tmp_path / "shifted")
    config = json.loads((folder / "config.json").read_text())
    config["image_token_id"] = 151654  # <|vision_pad|>: not the placeholder the processor expands
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(ModelNotAvailable, match=r"image_token_id is 151654 but the tokenizer's <\|image_pad\|> "
                                                r"is 151655; it has no chat template$"):
        load_captioner(str(folder), device="cpu")


def test_a_text_llm_without_a_chat_template_is_refused(tiny_text_lm_dir, tmp_path):
    from precompute.textllm import TextLLM

    folder = checkpoint_without_weights(tiny_text_lm_dir, tmp_path / "base-lm")
    (folder / "chat_template.jinja").unlink()
    llm = TextLLM(str(folder), "cpu", "float32", None, 8, stage="spans")
    with pytest.raises(ModelNotAvailable, match="has no chat template"):
        llm.generate([{"role": "user", "content": "hello"}])
