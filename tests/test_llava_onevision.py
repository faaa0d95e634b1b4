"""LLaVA-OneVision, the AnyRes family (precompute/families/llava_onevision.py, precompute/tiling.py):
its tokenizer rebuilt offline and its chat template, the canvas rule (whole 384-px crops within
anyres_max_9) against the processor's own image-token count, the token order the model's own
packing gives (base, crops' grid in raster order over the canvas, a newline after each row), a
planted hot crop, and the engine against the plain loop of the authors' rules (testkit/tam_loop.py).
The tiny model runs every stage in tests/test_families.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.families import family_for
from precompute.families.base import LayoutError
from precompute.tam import compute_tam
from precompute.tam_reference import ReferenceInputs, first_prompt_class
from precompute.tiling import Tile, Tiling, base_and_crops, per_tile
from testkit.tam_loop import corrected_loop, reference_loop

torch.set_num_threads(1)

# The ids transformers' conversion script gives LLaVA-OneVision (Qwen2-Instruct's three added tokens,
# then <image> and <video>: LlavaOnevisionConfig's image_token_index / video_token_index), by hand.
IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<image>": 151646, "<video>": 151647}
PROMPT = "Describe the content and style of this image."
FAMILY = family_for("llava_onevision")


@pytest.fixture(scope="module")
def tok():
    from precompute.tiny.llava_onevision import llava_onevision_tokenizer

    return llava_onevision_tokenizer()


@pytest.fixture(scope="module")
def processor(tok):
    from precompute.tiny.llava_onevision import llava_onevision_processor

    return llava_onevision_processor(tok)  # the checkpoints' 384-px crops


def chat(processor, prompt=PROMPT):
    return processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                      {"type": "text", "text": prompt}]}],
                                         add_generation_prompt=True, tokenize=False)


# --- tokenizer and template --------------------------------------------------------------------
def test_tokenizer_ids_and_chat_layout(processor, tok):
    assert {t: tok.convert_tokens_to_ids(t) for t in IDS} == IDS
    for t in IDS:  # added tokens, never split
        assert tok.encode(t, add_special_tokens=False) == [IDS[t]]
    assert processor.image_token_id == 151646
    assert tok.encode("a small village", add_special_tokens=False) == [64, 2613, 14126]  # Qwen2's BPE
    assert chat(processor) == f"<|im_start|>user <image>\n{PROMPT}<|im_end|><|im_start|>assistant\n"
    assert FAMILY.problems(type("Config", (), {"image_token_id": 151646})(), processor) == []


# transformers' conversion script's template (convert_llava_onevision_weights_to_hf.py), which some
# checkpoint revisions may carry instead: "user\n", "<image>\n", text, "<|im_end|>\n"
CONVERSION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_the_layout_reads_either_template(processor, tok):
    """The image run is every <image>, the prompt text what follows its newline up to <|im_end|>,
    with the hub template and with the conversion script's."""
    from PIL import Image

    from precompute.tiny.llava_onevision import llava_onevision_processor

    old = llava_onevision_processor(tok)
    old.chat_template = CONVERSION_TEMPLATE
    assert chat(old) == f"<|im_start|>user\n<image>\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    canvas = FAMILY.model_image(Image.new("RGB", (500, 400)), 0, 0, processor)
    for proc in (processor, old):
        ids = proc(images=[canvas], text=[chat(proc)], return_tensors="pt")["input_ids"][0].tolist()
        image_pos, prompt_pos = FAMILY.layout(ids, tok)
        assert len(image_pos) == ids.count(151646) == features(*FAMILY.canvas_crops(canvas.size, proc))
        assert tok.decode([ids[i] for i in prompt_pos]) == PROMPT
        assert tok.decode(ids[image_pos[-1] + 1:prompt_pos[0]]) == "\n"


def test_problems_name_what_breaks_the_layout(processor):
    config = type("Config", (), {"image_token_id": 151655, "vision_feature_select_strategy": "default",
                                 "vision_aspect_ratio": "anyres_max_4"})()
    found = " | ".join(FAMILY.problems(config, processor))
    assert "image_token_id is 151655 but the tokenizer's <image> is 151646" in found
    assert "vision_feature_select_strategy is 'default'" in found
    assert "vision_aspect_ratio is 'anyres_max_4' but the processor's is 'anyres_max_9'" in found


# --- the canvas rule ---------------------------------------------------------------------------
def features(cols: int, rows: int, side: int = 27) -> int:
    """The image tokens of a base image and cols x rows crops, counted by hand: the base's side^2,
    then rows*side rows of cols*side crop tokens, each row ended by a newline."""
    return side * side + rows * side * (cols * side + 1)


@pytest.mark.parametrize("size,crops", [
    ((384, 384), (1, 1)), ((500, 500), (2, 2)), ((1000, 1000), (3, 3)), ((3000, 3000), (3, 3)),
    ((2000, 1000), (4, 2)), ((400, 300), (3, 2)), ((2500, 1000), (5, 2)), ((300, 3000), (1, 6)),
    ((1100, 1000), (3, 3))])
def test_canvas_crops_and_token_count(processor, tok, size, crops):
    """The canvas is the painting resized to whole crops: the closest aspect ratio among the
    pinpoints of at most 10 crops (a 4:3 painting: 3x2, as 4x3 = 12 crops would be interpolated),
    equal ones settled as the processor settles them (more crops while the painting has the
    pixels). The processor, given the canvas, cuts the base + those crops, resizes nothing, and
    expands <image> to the count of features() in one run."""
    from PIL import Image

    canvas = FAMILY.model_image(Image.new("RGB", size, (90, 30, 200)), 0, 0, processor)
    cols, rows = crops
    assert canvas.size == (cols * 384, rows * 384)
    inputs = processor(images=[canvas], text=[chat(processor)], return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, cols * rows + 1, 3, 384, 384)
    assert inputs["image_sizes"][0].tolist() == [rows * 384, cols * 384]
    ids = inputs["input_ids"][0].tolist()
    n_image = ids.count(151646)
    assert n_image == features(cols, rows)
    tiling = FAMILY.tiling({"canvas_size": canvas.size, "n_image": n_image}, processor)
    assert tiling.grid == (rows * 27, cols * 27) and tiling.n_tokens == n_image
    image_pos, prompt_pos = FAMILY.layout(ids, tok)
    first = ids.index(151646)
    assert image_pos == list(range(first, first + n_image))
    assert tok.decode([ids[i] for i in prompt_pos]) == PROMPT


def test_the_crop_limit_is_where_the_processor_stops_interpolating(processor):
    """For every pinpoint, the processor's own count equals the uninterpolated count exactly when
    the family lets a canvas have those crops (10 at most with anyres_max_9: 5x2 yes, 4x3 no)."""
    allowed = set(FAMILY.layouts(processor))
    for h, w in processor.image_processor.image_grid_pinpoints:
        cols, rows = w // 384, h // 384
        exact = processor._get_number_of_features(h, w, 384, 384) == features(cols, rows)
        assert exact == ((cols, rows) in allowed), (cols, rows)
    assert (5, 2) in allowed and (2, 5) in allowed and (3, 3) in allowed and (4, 3) not in allowed
    assert len(allowed) == 6 + 5 + 3 + 2 + 2 + 1  # rows x cols <= 10 among 1..6 a side, by rows 1..6


def test_other_canvases_are_refused(processor):
    with pytest.raises(LayoutError, match="not a pinpoint"):
        FAMILY.tiling({"canvas_size": (1000, 384)}, processor)
    with pytest.raises(LayoutError, match="not a pinpoint"):  # 4x3 crops: the model would interpolate
        FAMILY.tiling({"canvas_size": (4 * 384, 3 * 384)}, processor)
    with pytest.raises(LayoutError, match="image tokens for a 27x27 base and 2x1 crops"):
        FAMILY.tiling({"canvas_size": (768, 384), "n_image": features(2, 1) - 1}, processor)


def test_the_models_packing_is_the_tiling(tmp_path):
    """Through the model's own code (get_image_features: SigLIP, projector, pack_image_features)
    on the tiny model: a canvas of identical crops but one brighter gives the packed features the
    tiling says: the base first, then the crops' grid in raster order over the canvas with the
    image_newline feature after each row; only the bright crop's block differs from the others."""
    import transformers
    from PIL import Image

    from precompute.tiny.llava_onevision import (
        TINY_CROP,
        llava_onevision_processor,
        llava_onevision_tokenizer,
        tiny_llava_onevision_config,
    )

    tok = llava_onevision_tokenizer()
    proc = llava_onevision_processor(tok, TINY_CROP)
    model = transformers.LlavaOnevisionModel(tiny_llava_onevision_config(tok, TINY_CROP)).eval()
    cols, rows, hot = 3, 2, 4  # crop 4: row 1, column 1
    pixels = np.full((rows * TINY_CROP, cols * TINY_CROP, 3), 60, np.uint8)
    r, c = divmod(hot, cols)
    pixels[r * TINY_CROP:(r + 1) * TINY_CROP, c * TINY_CROP:(c + 1) * TINY_CROP] = 220
    canvas = FAMILY.model_image(Image.fromarray(pixels), 0, 0, proc)
    assert canvas.size == (cols * TINY_CROP, rows * TINY_CROP)
    inputs = proc(images=[canvas], text=[chat(proc)], return_tensors="pt")
    with torch.no_grad():
        packed = model.get_image_features(inputs["pixel_values"], inputs["image_sizes"], vision_feature_layer=-1,
                                          vision_feature_select_strategy="full",
                                          vision_aspect_ratio="anyres_max_9").pooler_output[0]  # (N, D)
    side = 4
    tiling = FAMILY.tiling({"canvas_size": canvas.size, "n_image": int((inputs["input_ids"] == 151646).sum())}, proc)
    assert packed.shape[0] == tiling.n_tokens == features(cols, rows, side)
    grid = packed[side * side:].reshape(rows * side, cols * side + 1, -1)  # (H, W + 1, D)
    newline = model.image_newline.detach()
    assert all(torch.equal(grid[y, -1], newline) for y in range(rows * side))
    blocks = [grid[i * side:(i + 1) * side, j * side:(j + 1) * side] for i in range(rows) for j in range(cols)]
    plain = [b for k, b in enumerate(blocks) if k != hot]
    assert all(torch.allclose(b, plain[0], atol=1e-5) for b in plain)
    assert (blocks[hot] - plain[0]).abs().amax() > 1e-2
    assert not any(torch.allclose(grid[y, x], newline) for y in range(rows * side) for x in range(cols * side))
    # the tiling's own placement puts each crop's tokens in its block
    placed = per_tile(packed[:, 0][None], tiling)[0]
    assert torch.equal(placed, grid[:, :-1, 0])


def test_per_tile_drops_the_newlines_and_the_base():
    tiling = base_and_crops(2, 2, 1, 2)  # base 2x2, then a 2x4 crops' grid with a newline per row
    values = np.arange(4 + 2 * 5, dtype=np.float32)[None]  # token n has value n
    placed = per_tile(values, tiling)[0]
    np.testing.assert_array_equal(placed, [[4, 5, 6, 7], [9, 10, 11, 12]])  # 8 and 13: the newlines
    seen = []
    per_tile(torch.tensor(values), tiling, lambda x: seen.append(tuple(x.shape)) or x)
    assert seen == [(1, 2, 4)]  # the filter sees the crops' grid only, without its newlines
    assert Tiling((2, 4), (Tile(2, 2, None, None), Tile(2, 4, 0, 0, row_end=1))).n_tokens == 14
    tiling.check()


# --- the engine on base + crops ----------------------------------------------------------------
COLS, ROWS, SIDE = 3, 2, 4
HOT = 4  # the crop at row 1, column 1


def crop_token(y: int, x: int) -> int:
    """Image-token index of crops' grid cell (y, x): after the base, W + 1 tokens a row."""
    return SIDE * SIDE + y * (COLS * SIDE + 1) + x


def anyres_inputs(seed: int, hot: int | None = HOT, base_boost: float = 0.0, newline_boost: float = 0.0,
                  t: int = 6, dtype=torch.float64):
    """Random states on a base + 3x2 crops of 4x4 tokens with newlines. With `hot`, that crop's
    image states carry the generated tokens' class (c = 7) far above the rest; the boosts plant
    it in the base or the newline tokens as well."""
    g = torch.Generator().manual_seed(seed)
    tiling = base_and_crops(SIDE, COLS, ROWS, SIDE)
    n, d, v, p = tiling.n_tokens, 16, 40, 4
    pre, post = 3, 2
    s = pre + n + 1 + p + post + t
    hidden = torch.randn(s, d, generator=g, dtype=torch.float64) * 0.3
    weight = torch.randn(v, d, generator=g, dtype=torch.float64)
    ids = torch.randint(10, v, (s,), generator=g)
    image_pos = torch.arange(pre, pre + n)
    prompt_pos = torch.arange(pre + n + 1, pre + n + 1 + p)
    gen_pos = torch.arange(s - t, s)
    ids[gen_pos] = 7
    direction = weight[7] / weight[7].norm()
    if hot is not None:
        r, c = divmod(hot, COLS)
        for y in range(r * SIDE, (r + 1) * SIDE):
            for x in range(c * SIDE, (c + 1) * SIDE):
                hidden[pre + crop_token(y, x)] += 4 * direction
    if base_boost:
        hidden[pre:pre + SIDE * SIDE] += base_boost * direction
    if newline_boost:
        for y in range(ROWS * SIDE):
            hidden[pre + crop_token(y, COLS * SIDE)] += newline_boost * direction
    return hidden.to(dtype), weight.to(dtype), ids, image_pos, tiling, prompt_pos, gen_pos


def reference_of(hidden, weight, ids, prompt_pos, gen_pos):
    strings = tuple(f"w{int(i)}" for i in ids[prompt_pos]) + tuple(f"w{int(i)}" for i in ids[gen_pos])
    return ReferenceInputs(strings, len(prompt_pos), first_prompt_class(hidden[prompt_pos[0]], weight))


@pytest.mark.parametrize("boost", [{}, {"base_boost": 8.0}, {"newline_boost": 8.0}])
@pytest.mark.parametrize("variant", ["corrected", "reference"])
def test_planted_hot_crop_is_where_the_map_peaks(variant, boost):
    """The crop whose tokens carry the token's class holds the map's maximum, in its own place on
    the canvas's grid; a base image or newline tokens carrying it more strongly are drawn nowhere
    (that they take part in ECI and the normalisation is checked against the loop below)."""
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = anyres_inputs(0, **boost)
    reference = reference_of(hidden, weight, ids, prompt_pos, gen_pos) if variant == "reference" else None
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos, reference=reference,
                      tiling=tiling)
    assert got.maps.shape == (len(gen_pos), ROWS * SIDE, COLS * SIDE)
    r, c = divmod(HOT, COLS)
    inside = np.zeros((ROWS * SIDE, COLS * SIDE), bool)
    inside[r * SIDE:(r + 1) * SIDE, c * SIDE:(c + 1) * SIDE] = True
    first = 1 if variant == "reference" else 0  # reference token 0: the first prompt word's map
    for token in range(first, len(gen_pos)):
        assert inside[np.unravel_index(got.raw[token].argmax(), inside.shape)]
        assert inside[np.unravel_index(got.maps[token].argmax(), inside.shape)]
        assert got.maps[token][inside].mean() > 3 * got.maps[token][~inside].mean()


def loop_order(image_pos: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """The image tokens as the loop takes them: base, the crops' grid without its newlines, the
    newlines; one (h, w) image each (ECI and the normalisation take all of them alike)."""
    crops = image_pos[SIDE * SIDE:].reshape(ROWS * SIDE, COLS * SIDE + 1)
    order = torch.cat([image_pos[:SIDE * SIDE], crops[:, :-1].reshape(-1), crops[:, -1]])
    return order, [(SIDE, SIDE), (ROWS * SIDE, COLS * SIDE), (1, ROWS * SIDE)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_on_base_and_crops_is_the_loop(seed):
    """Bit for bit: the loop's map of the crops' grid equals the engine's stored map; raw maps and
    ranges too."""
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = anyres_inputs(seed, hot=None if seed else HOT,
                                                                                newline_boost=2.0 * (seed == 2))
    ids[gen_pos[::2]] = 9  # some repeats, some distinct
    reference = reference_of(hidden, weight, ids, prompt_pos, gen_pos)
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos, reference=reference,
                      tiling=tiling)
    order, shapes = loop_order(image_pos)
    want = reference_loop(hidden, weight, ids, order, shapes, prompt_pos, gen_pos, list(reference.strings),
                          len(prompt_pos))
    for t, ref in enumerate(want):
        np.testing.assert_array_equal(got.maps_u8[t], ref["u8"][1])
        np.testing.assert_array_equal(got.raw[t], ref["raw"][1])
        assert (got.lo[t], got.hi[t]) == (ref["lo"], ref["hi"])


@pytest.mark.parametrize("seed", [0, 1])
def test_corrected_on_base_and_crops_is_the_loop(seed):
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = anyres_inputs(seed)
    ids[gen_pos[1::2]] = 11
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos, tiling=tiling)
    order, shapes = loop_order(image_pos)
    want = corrected_loop(hidden.numpy(), weight.numpy(), ids.numpy(), order.tolist(), shapes, prompt_pos.tolist(),
                          gen_pos.tolist())
    for t, ref in enumerate(want):
        np.testing.assert_array_equal(got.maps_u8[t], ref["u8"][1])
        np.testing.assert_allclose(got.raw[t], ref["raw"][1], rtol=1e-6, atol=1e-7)  # stored float32


def test_describe_at_real_crop_size(tmp_path):
    """A tiny model with the real crops (384 px, 27x27 tokens): a 4:3 painting becomes 3x2 crops,
    729 + 54 x 82 = 5,157 image tokens as the processor counts them, and a 54x81 grid with one map
    per token."""
    import argparse

    from PIL import Image
    from safetensors.numpy import load_file
    from transformers import AutoProcessor

    from contract.store import Dataset, read_png_u8
    from precompute.stages import describe
    from precompute.tiny.llava_onevision import build_tiny_llava_onevision

    model_dir = build_tiny_llava_onevision(tmp_path / "model", crop=384)
    paintings = tmp_path / "in"
    paintings.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(paintings / "noise.png")
    parser = argparse.ArgumentParser()
    describe.configure(parser)
    args = parser.parse_args([str(paintings), str(tmp_path / "ds"), "--model", str(model_dir), "--max-new-tokens", "4",
                              "--device", "cpu", "--dtype", "float32", "--offline"])
    assert describe.run(args) == 0
    ds = Dataset(tmp_path / "ds")
    rec, = ds.records()
    assert (rec.canvas.width, rec.canvas.height) == (3 * 384, 2 * 384) and (rec.grid.h, rec.grid.w) == (54, 81)
    processor = AutoProcessor.from_pretrained(model_dir)
    with Image.open(ds.painting_dir(rec.id) / rec.canvas.path) as im:
        inputs = processor(images=[im.convert("RGB")], text=[chat(processor, rec.prompt)], return_tensors="pt")
    assert int((inputs["input_ids"] == 151646).sum()) == 729 + 54 * 82 == rec.grid.h * rec.grid.w + 729 + 54
    raw = load_file(str(ds.painting_dir(rec.id) / "tam_raw.safetensors"))
    assert raw["maps"].shape == (len(rec.tokens), 54, 81)
    assert all(read_png_u8(ds.painting_dir(rec.id) / t.map.png).shape == (54, 81) for t in rec.tokens)
    assert "".join(t.text for t in rec.tokens) == rec.caption


def test_a_batch_describes_as_one_at_a_time(tmp_path):
    """--batch-size 4 on the tiny model (float64): paintings of different crop counts in one batch
    (pixel_values padded to the most crops, prompts of different lengths left-padded) give the
    captions and 8-bit maps of one painting at a time."""
    from PIL import Image

    from contract.store import Dataset, read_png_u8
    from precompute.smoke import write_smoke_paintings
    from precompute.stages import describe
    from precompute.tiny.llava_onevision import build_tiny_llava_onevision
    from testkit.harness import stage_args

    model = build_tiny_llava_onevision(tmp_path / "model")
    paintings = write_smoke_paintings(tmp_path / "in")
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (200, 520, 3), dtype=np.uint8)).save(
        paintings / "wide-strip.png")
    runs = {}
    for batch in (1, 4):
        assert describe.run(stage_args(describe, [paintings, tmp_path / f"b{batch}", "--model", model, "--device",
                                                  "cpu", "--dtype", "float64", "--max-new-tokens", 8,
                                                  "--batch-size", batch])) == 0
        runs[batch] = Dataset(tmp_path / f"b{batch}")
    grids = set()
    for pid in runs[1].painting_ids():
        one, four = runs[1].record(pid), runs[4].record(pid)
        grids.add((one.grid.h, one.grid.w))
        assert one.caption == four.caption and [t.id for t in one.tokens] == [t.id for t in four.tokens]
        for token in one.tokens:
            np.testing.assert_array_equal(read_png_u8(runs[1].painting_dir(pid) / token.map.png),
                                          read_png_u8(runs[4].painting_dir(pid) / token.map.png))
    assert len(grids) >= 3  # the batch mixed crop counts


def planted_model(folder, word: str = " lemon"):
    """The tiny model (60-px crops) rewired so that a bright crop's tokens read `word`'s class and
    every caption token is that word: SigLIP's layers add nothing (their output projections are 0)
    and its patch embedding is the patch's mean pixel; the projector maps that mean to gelu(8 x
    mean) along the head row of `word`, so a bright crop (mean 0.73) is far along it and a dark one
    (-0.53) is not; the head keeps only that row, and every token embedding leans along it, so
    greedy decoding writes `word` again and again. Saved like the other tiny models."""
    import transformers

    from precompute.tiny.llava_onevision import (
        TINY_CROP,
        llava_onevision_processor,
        llava_onevision_tokenizer,
        tiny_llava_onevision_config,
    )
    from precompute.tiny.qwen2vl import tiny_weights

    tok = llava_onevision_tokenizer()
    cls, = tok.encode(word, add_special_tokens=False)
    model = tiny_weights(transformers.LlavaOnevisionForConditionalGeneration, tiny_llava_onevision_config(tok, TINY_CROP),
                         tok, 0)
    with torch.no_grad():
        vision = model.model.vision_tower
        for layer in vision.encoder.layers:
            for linear in (layer.self_attn.out_proj, layer.mlp.fc2):
                linear.weight.zero_()
                linear.bias.zero_()
        vision.embeddings.position_embedding.weight.zero_()
        conv = vision.embeddings.patch_embedding
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0] = 1 / conv.weight[0].numel()  # channel 0: the patch's mean (normalised) pixel
        head = model.get_output_embeddings().weight
        direction = head[cls] / head[cls].norm()
        projector = model.model.multi_modal_projector
        for linear in (projector.linear_1, projector.linear_2):
            linear.weight.zero_()
            linear.bias.zero_()
        projector.linear_1.weight[0, 0] = 8.0
        projector.linear_2.weight[:, 0] = 40 * direction
        model.model.image_newline.zero_()
        keep = head[cls].clone()
        head.zero_()
        head[cls] = keep
        model.get_input_embeddings().weight.add_(20 * direction)
    model.save_pretrained(folder)
    llava_onevision_processor(tok, TINY_CROP).save_pretrained(folder)
    return folder, cls


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_a_planted_bright_crop_lands_in_its_place_on_the_canvas(tmp_path, variant):
    """Through describe and the real model: a 3x2-crop painting whose crop at row 1, column 1 is
    bright, on a model whose bright crops read the caption's class, gives maps that peak in that
    crop's block of the stored grid (rows 4..7, columns 4..7): every caption token's map (corrected),
    token 0's (reference)."""
    from PIL import Image

    from contract.store import Dataset, read_png_u8
    from precompute.stages import describe
    from testkit.harness import stage_args

    model, cls = planted_model(tmp_path / "model")
    paintings = tmp_path / "in"
    paintings.mkdir()
    crop, cols, rows, hot_row, hot_col = 60, 3, 2, 1, 1
    pixels = np.full((rows * crop, cols * crop, 3), 60, np.uint8)
    pixels[hot_row * crop:(hot_row + 1) * crop, hot_col * crop:(hot_col + 1) * crop] = 220
    Image.fromarray(pixels).save(paintings / "one-bright-crop.png")
    assert describe.run(stage_args(describe, [paintings, tmp_path / "ds", "--model", model, "--device", "cpu",
                                              "--dtype", "float32", "--max-new-tokens", 4,
                                              "--tam-variant", variant])) == 0
    ds = Dataset(tmp_path / "ds")
    rec, = ds.records()
    assert (rec.canvas.width, rec.canvas.height) == (cols * crop, rows * crop) and (rec.grid.h, rec.grid.w) == (8, 12)
    assert [t.id for t in rec.tokens] == [cls] * 4
    inside = np.zeros((8, 12), bool)
    inside[hot_row * 4:(hot_row + 1) * 4, hot_col * 4:(hot_col + 1) * 4] = True
    tokens = rec.tokens
    if variant == "reference":
        # their token 0 is the map of the class the model guesses after the prompt's first word: the
        # planted word too; its map then counts as interference for the later tokens, which the
        # least-squares ECI removes whole (their maps are 0): only token 0 shows the crop
        assert rec.provenance["tam"]["first_prompt_class"]["id"] == cls
        tokens = tokens[:1]
    for token in tokens:
        png = read_png_u8(ds.painting_dir(rec.id) / token.map.png).astype(float)
        assert inside[np.unravel_index(png.argmax(), png.shape)]
        assert png[inside].mean() > 5 * png[~inside].mean()
