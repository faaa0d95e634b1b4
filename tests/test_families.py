"""Captioner families (precompute.families) end to end on tiny random-weight models with Qwen's
real BPE (precompute/tiny): every stage of `tamscope precompute`, the grid against the
processor's own image-token count, one map per token, offsets that rebuild the caption, and the
reference TAM variant against the plain loop of the authors' rules (testkit/tam_loop.py).

Qwen2-VL runs through every other test; here the families added beside it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from precompute import pipeline
from precompute.families import FAMILIES, family_for
from precompute.smoke import write_smoke_paintings

torch.set_num_threads(1)
FAMILY_MODELS = ["qwen2_5_vl", "qwen3_vl", "qwen3_5", "internvl", "llava_onevision"]  # the tiny models' families besides Qwen2-VL
MAX_NEW = 12


@pytest.fixture(scope="module", params=FAMILY_MODELS)
def family_model(request, tmp_path_factory) -> tuple[str, Path]:
    from precompute.tiny.internvl import build_tiny_internvl
    from precompute.tiny.llava_onevision import build_tiny_llava_onevision
    from precompute.tiny.qwen2vl import build_tiny_qwen2vl

    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    if request.param == "internvl":
        return request.param, build_tiny_internvl(folder)
    if request.param == "llava_onevision":
        return request.param, build_tiny_llava_onevision(folder)
    return request.param, build_tiny_qwen2vl(folder, family=request.param)


@pytest.fixture(scope="module")
def paintings(tmp_path_factory) -> Path:
    folder = write_smoke_paintings(tmp_path_factory.mktemp("paintings"))
    for extra in sorted(folder.iterdir())[2:]:  # two paintings are enough here (CI time)
        if extra.suffix != ".json":
            extra.unlink()
    return folder


@pytest.fixture(scope="module")
def precomputed(family_model, paintings, tiny_sam3_dir, tmp_path_factory) -> tuple[str, Path, Path]:
    family, model_dir = family_model
    out = tmp_path_factory.mktemp(f"ds-{family}") / "ds"
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    args = parser.parse_args([str(paintings), str(out), "--captioner", str(model_dir), "--text-llm", "lexicon",
                              "--segmenter", str(tiny_sam3_dir), "--max-new-tokens", str(MAX_NEW),
                              "--sam-threshold", "0.2", "--device", "cpu", "--dtype", "float32", "--offline"])
    assert pipeline.run(args) == 0
    return family, model_dir, out


def test_every_stage_runs_and_the_dataset_is_valid(precomputed):
    family, _, out = precomputed
    assert validate_dataset(out) == []
    ds = Dataset(out)
    assert ds.manifest().failures == []
    for rec in ds.records():
        assert {"describe", "reliance", "spans", "spanmaps", "sam", "metadata"} <= set(rec.stages)
        assert rec.failures == []
        assert "".join(t.text for t in rec.tokens) == rec.caption  # offsets rebuild the caption
        assert all(rec.caption[t.start:t.end] == t.text for t in rec.tokens)
        assert 1 <= len(rec.tokens) <= MAX_NEW and all(t.reliance is not None for t in rec.tokens)


def test_grid_is_the_processors_and_one_map_per_token(precomputed):
    """The processor, run here on the stored canvas, expands the image placeholder to as many
    tokens as the stored grid has cells, and its image_grid_thw merged 2x2 is that grid. InternVL:
    the canvas is cols x rows tiles of 448 px, the processor gives 256 <IMG_CONTEXT> per tile (+ a
    thumbnail's 256 when there are several) and the stored grid is the tiles' 16x16 grids side by side."""
    from PIL import Image
    from safetensors.numpy import load_file
    from transformers import AutoProcessor

    family, model_dir, out = precomputed
    processor = AutoProcessor.from_pretrained(model_dir)
    tok = processor.tokenizer
    patch = {"qwen2_5_vl": 14, "qwen3_vl": 16, "qwen3_5": 16, "internvl": 14, "llava_onevision": 14}[family]
    ds = Dataset(out)
    for rec in ds.records():
        with Image.open(ds.painting_dir(rec.id) / rec.canvas.path) as im:
            canvas = im.convert("RGB")
        if family != "llava_onevision":  # the canvas is what the model saw: sides are multiples of 2 patches
            assert canvas.width % (2 * patch) == 0 and canvas.height % (2 * patch) == 0
        text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                          {"type": "text", "text": rec.prompt}]}],
                                             add_generation_prompt=True, tokenize=False,
                                             **FAMILIES[family].chat_options)
        inputs = processor(images=[canvas], text=[text], return_tensors="pt")
        if family == "internvl":  # the tiny model's tiles: 112 px, 4x4 tokens (precompute/tiny/internvl.py)
            tile, per_tile = processor.image_processor.size["height"], processor.image_seq_length
            side = (tile // patch) // 2  # patches per tile side, pixel-shuffled 2x2
            assert side * side == per_tile
            assert canvas.width % tile == 0 and canvas.height % tile == 0
            cols, rows = canvas.width // tile, canvas.height // tile
            n_tiles = inputs["pixel_values"].shape[0]
            assert n_tiles == cols * rows + (cols * rows > 1) > 1  # the processor cut the canvas into these tiles
            n_image = int((inputs["input_ids"] == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum())
            assert n_image == per_tile * n_tiles
            assert (rec.grid.h, rec.grid.w) == (side * rows, side * cols)
        elif family == "llava_onevision":  # the tiny model's crops: 60 px, 4x4 tokens (precompute/tiny)
            crop = processor.image_processor.size["height"]
            side = crop // patch  # SigLIP's patches per crop side (60 // 14 = 4, as 384 // 14 = 27)
            assert side * side == processor.num_image_tokens
            assert canvas.width % crop == 0 and canvas.height % crop == 0
            cols, rows = canvas.width // crop, canvas.height // crop
            # the processor took the canvas as one pinpoint: a base image + the crops, nothing resized
            assert inputs["pixel_values"].shape[1] == cols * rows + 1 > 2
            assert inputs["image_sizes"][0].tolist() == [canvas.height, canvas.width]
            n_image = int((inputs["input_ids"] == tok.convert_tokens_to_ids("<image>")).sum())
            # base side x side, then rows * side rows of cols * side crop tokens and a newline each
            assert n_image == side * side + rows * side * (cols * side + 1)
            assert (rec.grid.h, rec.grid.w) == (side * rows, side * cols)
        else:
            n_image = int((inputs["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).sum())
            _, h, w = inputs["image_grid_thw"][0].tolist()
            assert (h * patch, w * patch) == (canvas.height, canvas.width)
            assert (rec.grid.h, rec.grid.w) == (h // 2, w // 2) and rec.grid.h * rec.grid.w == n_image
        raw = load_file(str(ds.painting_dir(rec.id) / "tam_raw.safetensors"))
        assert raw["maps"].shape == (len(rec.tokens), rec.grid.h, rec.grid.w)
        for token in rec.tokens:
            assert read_png_u8(ds.painting_dir(rec.id) / token.map.png).shape == (rec.grid.h, rec.grid.w)


def test_reference_maps_are_the_loop_reference_on_the_familys_template(precomputed, paintings):
    """The stored 8-bit maps equal the plain loop of the authors' rules (testkit/tam_loop.py), fed
    with states recomputed here by a teacher-forced pass and the index rules applied to this
    family's template: image tokens = the <|image_pad|> run, prompt text = between <|vision_end|>
    and <|im_end|>, re-tokenised strings of the prompt text and of the answer. InternVL: image
    tokens = every <IMG_CONTEXT>, one 16x16 image per tile and one for the thumbnail as their
    multi-image path takes a list of vision shapes, the tiles' maps placed by hand in the
    processor's crop order; prompt text = after </img> and the template's newline. LLaVA-OneVision:
    image tokens = every <image> (base, crops, newlines), given to the loop as three images in the
    order base, crops' grid, the newline tokens (ECI and the normalisation take all image tokens
    alike; the loop's map of the newlines is dropped, as the base's); prompt text = after the image
    run and the template's newline."""
    from precompute.captioner_inputs import MAX_PIXELS, MIN_PIXELS, prompt_inputs, teacher_forced_inputs
    from precompute.models import load_captioner
    from precompute.paintings import load_painting
    from testkit.tam_loop import reference_loop

    family, model_dir, out = precomputed
    ds = Dataset(out)
    rec = next(iter(ds.records()))
    assert rec.provenance["tam"]["variant"] == "reference"
    cap = load_captioner(str(model_dir), device="cpu", dtype="float32")
    assert cap.family is FAMILIES[family]
    # the canvas as describe made it in memory (canvas.jpg is a lossy copy)
    canvas = cap.family.model_image(load_painting(paintings / rec.source_file).image, MIN_PIXELS, MAX_PIXELS,
                                    cap.processor)
    ids = [t.id for t in rec.tokens]
    inputs = prompt_inputs(cap, canvas, rec.prompt)
    n_prompt = inputs["input_ids"].shape[1]
    forced = teacher_forced_inputs(inputs, ids)
    with torch.no_grad():
        hidden = cap.model.model(**forced).last_hidden_state[0]  # (S, D) after the final norm
    full = forced["input_ids"][0]
    tok, head = cap.processor.tokenizer, cap.model.get_output_embeddings().weight.detach()
    if family == "qwen3_5":  # told enable_thinking=False: the prompt ends on an empty thinking block
        assert tok.decode(full[:n_prompt].tolist()).endswith(f"{rec.prompt}<|im_end|>\n<|im_start|>assistant\n"
                                                              "<think>\n\n</think>\n\n")
    tiled, anyres = family == "internvl", family == "llava_onevision"
    image_token, image_end = ("<IMG_CONTEXT>", "</img>") if tiled else ("<|image_pad|>", "<|vision_end|>")
    if anyres:
        image_token = "<image>"
    image_pos = (full == tok.convert_tokens_to_ids(image_token)).nonzero()[:, 0]
    vision_end = (int(image_pos[-1]) if anyres  # no end token: the run's last <image>
                  else int((full == tok.convert_tokens_to_ids(image_end)).nonzero()[0, 0]))
    im_end = next(i for i in range(vision_end, n_prompt) if full[i] == tok.convert_tokens_to_ids("<|im_end|>"))
    start = vision_end + 1
    if tiled or anyres:
        assert tok.decode([int(full[start])]) == "\n"  # the template's newline after the image
        start += 1
    prompt_pos = list(range(start, im_end))
    gen_pos = list(range(n_prompt, n_prompt + len(ids)))

    def decode(x):
        return tok.decode(x, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    prompt_strings = tok.tokenize(decode(full[prompt_pos].tolist()))
    stop = [tok.convert_tokens_to_ids("<|im_end|>")] if len(ids) < MAX_NEW else []  # stopped on its end token
    strings = prompt_strings + tok.tokenize(decode(ids + stop))
    shapes = (rec.grid.h, rec.grid.w)
    if tiled:  # one (side, side) image per tile and one for the thumbnail
        tile, per_tile = cap.processor.image_processor.size["height"], cap.processor.image_seq_length
        cols, rows = canvas.width // tile, canvas.height // tile
        side = math.isqrt(per_tile)
        shapes = [(side, side)] * (len(image_pos) // per_tile)
        assert len(shapes) == cols * rows + (cols * rows > 1) and len(shapes) > 1
    if anyres:  # base, the crops' grid without its newlines, the newlines
        crop, side = cap.processor.image_processor.size["height"], math.isqrt(cap.processor.num_image_tokens)
        cols, rows = canvas.width // crop, canvas.height // crop
        assert len(image_pos) == side * side + rows * side * (cols * side + 1)
        crops = image_pos[side * side:].reshape(rows * side, cols * side + 1)
        image_pos = torch.cat([image_pos[:side * side], crops[:, :-1].reshape(-1), crops[:, -1]])
        shapes = [(side, side), (rows * side, cols * side), (1, rows * side)]
    want = reference_loop(hidden, head, full, image_pos, shapes, prompt_pos, gen_pos, strings, len(prompt_strings))
    assert rec.provenance["tam"]["first_prompt_class"]["id"] == want[0]["cls"]
    # describe's log P(token | image), kept while generating, is the teacher-forced pass's
    from safetensors.numpy import load_file

    logits = (hidden[torch.tensor(gen_pos) - 1] @ head.T).double()  # (T, V): the positions that predicted them
    logp = logits.log_softmax(-1)[torch.arange(len(ids)), torch.tensor(ids)].numpy()
    stored = load_file(str(ds.painting_dir(rec.id) / "tam_raw.safetensors"))["logp_image"]
    np.testing.assert_allclose(stored, logp, rtol=0, atol=1e-4)  # float32 states
    for token, ref in zip(rec.tokens, want, strict=True):
        # tiles k = 0 .. cols*rows-1 at row k // cols, column k % cols; the thumbnail is not stored
        expected = (np.vstack([np.hstack(ref["u8"][r * cols:(r + 1) * cols]) for r in range(rows)]) if tiled
                    else ref["u8"][1] if anyres else ref["u8"])
        np.testing.assert_array_equal(read_png_u8(ds.painting_dir(rec.id) / token.map.png), expected)


def test_the_family_comes_from_the_config():
    assert family_for("qwen2_vl").label == "Qwen2-VL" and family_for("qwen3_vl").factor == 32
    assert family_for("qwen3_5").class_name == "Qwen3_5ForConditionalGeneration"
    assert family_for("qwen3_5_text") is None  # the text-only model has no vision tower
    assert family_for("llama") is None and family_for(None) is None
    assert family_for("internvl").class_name == "InternVLForConditionalGeneration"
    assert family_for("llava_onevision").class_name == "LlavaOnevisionForConditionalGeneration"


def test_the_faithfulness_stage_runs_on_every_familys_paintings(precomputed, tmp_path):
    """The optional faithfulness stage on each family's dataset (InternVL's tiles and
    LLaVA-OneVision's base image and crops included: tests/test_faithfulness_tiled.py and
    tests/test_faithfulness_llava.py have their details; the refusal of a family whose image
    inputs it does not build is tested there with a made-up family): a map of the record's grid
    per span with tokens, and the dataset stays valid."""
    import shutil

    from precompute.stages import faithfulness

    family, model_dir, out = precomputed
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    parser = argparse.ArgumentParser()
    faithfulness.configure(parser)
    args = parser.parse_args([str(copy), "--model", str(model_dir), "--device", "cpu", "--dtype", "float32",
                              "--offline", "--max-spans", "1", "--steps", "2", "--methods", "tam-reference,logit"])
    assert faithfulness.run(args) == 0
    done = 0
    for rec in Dataset(copy).records():
        assert not [f for f in rec.failures if f.stage == "faithfulness"]
        for span in rec.spans:
            if span.faithfulness is not None:
                done += 1
                for result in span.faithfulness.methods.values():
                    u8 = read_png_u8(Dataset(copy).painting_dir(rec.id) / result.map.png)
                    assert u8.shape == (rec.grid.h, rec.grid.w)
    assert done > 0
    assert validate_dataset(copy) == []
