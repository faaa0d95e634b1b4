"""InternVL, the tiled family (precompute/families/internvl.py, precompute/tiling.py): its
tokenizer rebuilt offline, the processor's tile order, the pixel shuffle's token order, the
placement of per-tile maps on the composite grid, a planted hot tile, and the engine against the
plain loop of the authors' multi-image path (testkit/tam_loop.py). The tiny model runs every
stage in tests/test_families.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.tam import compute_tam
from precompute.tam_reference import ReferenceInputs, first_prompt_class
from precompute.tiling import Tile, Tiling, per_tile, single, tile_grid
from testkit.tam_loop import corrected_loop, reference_loop

torch.set_num_threads(1)

# The ids transformers' conversion script gives InternVL's Qwen2 backbones (Qwen2.5-VL's tokenizer
# + 9 added tokens; InternVLConfig.image_token_id = 151667), written out here by hand.
INTERNVL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|image_pad|>": 151655,
                "<tool_call>": 151657, "<|file_sep|>": 151664, "<img>": 151665, "</img>": 151666,
                "<IMG_CONTEXT>": 151667, "<quad>": 151668, "<ref>": 151670, "</box>": 151673}
PROMPT = "Describe the content and style of this image."


@pytest.fixture(scope="module")
def processor():
    from precompute.tiny.internvl import internvl_processor, internvl_tokenizer

    return internvl_processor(internvl_tokenizer())


def chat(processor, prompt=PROMPT):
    return processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                      {"type": "text", "text": prompt}]}],
                                         add_generation_prompt=True, tokenize=False)


# --- tokenizer and processor -------------------------------------------------------------------
def test_tokenizer_ids_and_chat_layout(processor):
    tok = processor.tokenizer
    assert {t: tok.convert_tokens_to_ids(t) for t in INTERNVL_IDS} == INTERNVL_IDS
    for t in ("<img>", "</img>", "<IMG_CONTEXT>"):  # added tokens, never split
        assert tok.encode(t, add_special_tokens=False) == [INTERNVL_IDS[t]]
    assert (tok.start_image_token_id, tok.end_image_token_id, tok.context_image_token_id) == (151665, 151666, 151667)
    assert tok.encode("a small village", add_special_tokens=False) == [64, 2613, 14126]  # Qwen2's BPE
    text = chat(processor)
    assert text == f"<|im_start|>user\n<IMG_CONTEXT>\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("size,tiles", [((448, 448), (1, 1)), ((896, 448), (2, 1)), ((448, 1344), (1, 3)),
                                        ((1000, 1000), (3, 3)), ((448, 336), (4, 3))])
def test_canvas_tiles_and_token_count(processor, size, tiles):
    """The canvas is the painting resized to the tiles that cover it; the processor, given the
    canvas, cuts it into those tiles (plus a thumbnail when there are several) and expands the
    image to 256 <IMG_CONTEXT> per tile between <img> and </img>."""
    from PIL import Image

    from precompute.families import family_for

    family = family_for("internvl")
    canvas = family.model_image(Image.new("RGB", size, (90, 30, 200)), 0, 0, processor)
    cols, rows = tiles
    assert canvas.size == (cols * 448, rows * 448)
    inputs = processor(images=[canvas], text=[chat(processor)], return_tensors="pt")
    n_tiles = cols * rows + (cols * rows > 1)
    assert inputs["pixel_values"].shape == (n_tiles, 3, 448, 448)
    ids = inputs["input_ids"][0].tolist()
    n_image = ids.count(151667)
    assert n_image == 256 * n_tiles
    first = ids.index(151667)
    assert ids[first - 1] == 151665 and ids[first + n_image] == 151666  # one run between <img> and </img>
    tiling = family.tiling({"canvas_size": canvas.size, "n_image": n_image}, processor)
    assert tiling.grid == (rows * 16, cols * 16) and tiling.n_tokens == n_image
    image_pos, prompt_pos = family.layout(ids, processor.tokenizer)
    assert image_pos == list(range(first, first + n_image))
    assert processor.tokenizer.decode([ids[i] for i in prompt_pos]) == PROMPT


def test_tiles_come_in_raster_order(processor):
    """pixel_values[k] is the tile at row k // cols, column k % cols of the canvas (then the thumbnail)."""
    from PIL import Image

    cols, rows = 3, 2
    canvas = np.zeros((rows * 448, cols * 448, 3), np.uint8)
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        canvas[r * 448:(r + 1) * 448, c * 448:(c + 1) * 448] = 40 * (k + 1)
    pixels = processor.image_processor(images=[Image.fromarray(canvas)], crop_to_patches=True,
                                       return_tensors="pt")["pixel_values"]
    assert pixels.shape[0] == cols * rows + 1
    std, mean = processor.image_processor.image_std[0], processor.image_processor.image_mean[0]
    levels = ((pixels[:cols * rows, 0].mean((1, 2)) * std + mean) * 255).round().tolist()
    assert levels == [40.0 * (k + 1) for k in range(cols * rows)]


def test_pixel_shuffle_keeps_raster_order(tmp_path):
    """Token i * 16 + j of a tile carries the patches of rows 2i..2i+1, columns 2j..2j+1: the
    tile's tokens are in raster order over its 16x16 grid."""
    import transformers

    from precompute.tiny.internvl import internvl_tokenizer, tiny_internvl_config

    model = transformers.InternVLModel(tiny_internvl_config(internvl_tokenizer()))
    rows = torch.arange(32.0)[:, None].expand(32, 32)
    cols = torch.arange(32.0)[None, :].expand(32, 32)
    features = torch.stack([rows, cols], -1)[None]  # (1, 32, 32, 2): each patch's own row and column
    shuffled = model.pixel_shuffle(features, scale_factor=0.5).reshape(1, 256, -1)[0]  # (256, 8)
    for token in range(256):
        i, j = divmod(token, 16)
        values = shuffled[token].reshape(-1, 2)  # the 4 patches merged into this token
        assert set(values[:, 0].tolist()) == {2 * i, 2 * i + 1} and set(values[:, 1].tolist()) == {2 * j, 2 * j + 1}


# --- placement ---------------------------------------------------------------------------------
def by_hand(per_image: list[np.ndarray], cols: int, rows: int) -> np.ndarray:
    """Tiles k = 0 .. cols*rows-1 at row k // cols, column k % cols (the processor's crop order);
    anything after them (the thumbnail) is left out."""
    return np.vstack([np.hstack(per_image[r * cols:(r + 1) * cols]) for r in range(rows)])


def test_per_tile_places_each_tile_and_drops_the_thumbnail():
    tiling = tile_grid(3, 2, 2, thumbnail=True)  # 6 tiles of 2x2 tokens + a 2x2 thumbnail
    values = np.arange(7 * 4, dtype=np.float32)[None]  # token n has value n
    placed = per_tile(values, tiling)[0]
    assert placed.shape == (4, 6)
    np.testing.assert_array_equal(placed, [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11],
                                           [12, 13, 16, 17, 20, 21], [14, 15, 18, 19, 22, 23]])
    seen = []
    per_tile(torch.tensor(values), tiling, lambda x: seen.append(x.shape) or x * 0 + len(seen))
    assert seen == [(1, 2, 2)] * 6  # one call per placed tile, each on its own grid; not the thumbnail


def test_tiling_checks():
    with pytest.raises(ValueError, match="exactly once"):
        Tiling((2, 4), (Tile(2, 2, 0, 0), Tile(2, 2, 0, 1))).check()
    with pytest.raises(ValueError, match="outside"):
        Tiling((2, 2), (Tile(2, 2, 0, 1),)).check()
    single(3, 4).check()
    tile_grid(2, 3, 16, True).check()


# --- the engine on several grids -------------------------------------------------------------
COLS, ROWS, SIDE = 3, 2, 4
HOT = 4  # the tile at row 1, column 1


def tiled_inputs(seed: int, hot: int | None = HOT, thumb_boost: float = 0.0, t: int = 6, dtype=torch.float64):
    """Random states on a 3x2 tiling of 4x4 tokens + a thumbnail. With `hot`, that tile's image
    states carry the generated tokens' class (c = 7, every generated token) far above the rest;
    `thumb_boost` plants the same class in the thumbnail too."""
    g = torch.Generator().manual_seed(seed)
    tiling = tile_grid(COLS, ROWS, SIDE, thumbnail=True)
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
    tile = SIDE * SIDE
    if hot is not None:
        hidden[pre + hot * tile:pre + (hot + 1) * tile] += 4 * direction
    if thumb_boost:
        hidden[pre + COLS * ROWS * tile:pre + n] += thumb_boost * direction
    return (hidden.to(dtype), weight.to(dtype), ids, image_pos, tiling, prompt_pos, gen_pos)


@pytest.mark.parametrize("thumb_boost", [0.0, 8.0])
@pytest.mark.parametrize("variant", ["corrected", "reference"])
def test_planted_hot_tile_is_where_the_map_peaks(variant, thumb_boost):
    """The tile whose tokens carry the token's class holds the map's maximum, in its own place on
    the canvas's grid; a thumbnail carrying it even more strongly is not drawn anywhere."""
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = tiled_inputs(0, thumb_boost=thumb_boost)
    reference = None
    if variant == "reference":
        strings = tuple(f"w{int(i)}" for i in ids[prompt_pos]) + tuple(f"w{int(i)}" for i in ids[gen_pos])
        reference = ReferenceInputs(strings, len(prompt_pos), first_prompt_class(hidden[prompt_pos[0]], weight))
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos, reference=reference,
                      tiling=tiling)
    assert got.maps.shape == (len(gen_pos), ROWS * SIDE, COLS * SIDE)
    r, c = divmod(HOT, COLS)
    block = (slice(r * SIDE, (r + 1) * SIDE), slice(c * SIDE, (c + 1) * SIDE))
    first = 1 if variant == "reference" else 0  # reference token 0: the first prompt word's map
    for token in range(first, len(gen_pos)):
        raw = got.raw[token]
        assert np.unravel_index(raw.argmax(), raw.shape)[0] // SIDE == r
        peak = np.unravel_index(got.maps[token].argmax(), got.maps[token].shape)
        assert block[0].start <= peak[0] < block[0].stop and block[1].start <= peak[1] < block[1].stop
        assert got.maps[token][block].mean() > 3 * np.delete(got.maps[token].ravel(),
                                                              np.ravel_multi_index(np.indices((SIDE, SIDE)).reshape(2, -1)
                                                                                   + np.array([[r * SIDE], [c * SIDE]]),
                                                                                   got.maps[token].shape)).mean()
    if thumb_boost:  # the thumbnail took part in the normalisation: its values set hi
        plain = compute_tam(*tiled_inputs(0)[:4], tiling.grid, prompt_pos, gen_pos, reference=reference,
                            tiling=tiling)
        assert (got.hi[first:] > plain.hi[first:]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_on_tiles_is_the_loop_of_their_multi_image_path(seed):
    """Bit for bit: the loop's per-image 8-bit maps (vision_shape = one (h, w) per tile and the
    thumbnail), placed by hand, equal the engine's composite maps; raw maps and ranges too."""
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = tiled_inputs(seed, hot=None if seed else HOT)
    ids[gen_pos[::2]] = 9  # some repeats, some distinct
    strings = tuple(f"w{int(i)}" for i in ids[prompt_pos]) + tuple(f"w{int(i)}" for i in ids[gen_pos])
    first = first_prompt_class(hidden[prompt_pos[0]], weight)
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos,
                      reference=ReferenceInputs(strings, len(prompt_pos), first), tiling=tiling)
    shapes = [(SIDE, SIDE)] * (COLS * ROWS + 1)
    want = reference_loop(hidden, weight, ids, image_pos, shapes, prompt_pos, gen_pos, list(strings),
                          len(prompt_pos))
    for t, ref in enumerate(want):
        np.testing.assert_array_equal(got.maps_u8[t], by_hand(ref["u8"], COLS, ROWS))
        np.testing.assert_array_equal(got.raw[t], by_hand(ref["raw"], COLS, ROWS))
        assert (got.lo[t], got.hi[t]) == (ref["lo"], ref["hi"])


@pytest.mark.parametrize("seed", [0, 1])
def test_corrected_on_tiles_is_the_loop(seed):
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = tiled_inputs(seed)
    ids[gen_pos[1::2]] = 11
    got = compute_tam(hidden, weight, ids, image_pos, tiling.grid, prompt_pos, gen_pos, tiling=tiling)
    want = corrected_loop(hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(),
                          [(SIDE, SIDE)] * (COLS * ROWS + 1), prompt_pos.tolist(), gen_pos.tolist())
    for t, ref in enumerate(want):
        np.testing.assert_array_equal(got.maps_u8[t], by_hand(ref["u8"], COLS, ROWS))
        np.testing.assert_allclose(got.raw[t], by_hand(ref["raw"], COLS, ROWS), rtol=1e-6, atol=1e-7)  # stored float32


def test_a_tiling_that_does_not_hold_the_tokens_is_refused():
    hidden, weight, ids, image_pos, tiling, prompt_pos, gen_pos = tiled_inputs(0)
    with pytest.raises(ValueError, match="7 grids do not hold"):
        compute_tam(hidden, weight, ids, image_pos[:-1], tiling.grid, prompt_pos, gen_pos, tiling=tiling)
    with pytest.raises(ValueError, match="not the grid"):
        compute_tam(hidden, weight, ids, image_pos, (8, 8), prompt_pos, gen_pos, tiling=tiling)


def test_describe_at_real_tile_size(tmp_path):
    """A tiny model with InternVL's real tiles (448 px, 256 tokens): a 4:3 painting becomes 4x3
    tiles + a thumbnail, 3,328 image tokens as the processor counts them, and a 48x64 grid with
    one map per token."""
    import argparse

    from PIL import Image
    from safetensors.numpy import load_file
    from transformers import AutoProcessor

    from contract.store import Dataset, read_png_u8
    from precompute.stages import describe
    from precompute.tiny.internvl import build_tiny_internvl

    model_dir = build_tiny_internvl(tmp_path / "model", tile=448)
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
    assert (rec.canvas.width, rec.canvas.height) == (4 * 448, 3 * 448) and (rec.grid.h, rec.grid.w) == (48, 64)
    processor = AutoProcessor.from_pretrained(model_dir)
    with Image.open(ds.painting_dir(rec.id) / rec.canvas.path) as im:
        inputs = processor(images=[im.convert("RGB")], text=[chat(processor, rec.prompt)], return_tensors="pt")
    assert int((inputs["input_ids"] == 151667).sum()) == 256 * 13 == rec.grid.h * rec.grid.w + 256
    raw = load_file(str(ds.painting_dir(rec.id) / "tam_raw.safetensors"))
    assert raw["maps"].shape == (len(rec.tokens), 48, 64)
    assert all(read_png_u8(ds.painting_dir(rec.id) / t.map.png).shape == (48, 64) for t in rec.tokens)
    assert "".join(t.text for t in rec.tokens) == rec.caption
