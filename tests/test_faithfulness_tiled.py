"""The faithfulness stage on a tiled family: the tiny InternVL (precompute/tiny/internvl.py, its
real tokenizer), 112-px tiles of 4x4 tokens plus a thumbnail (issues 15 and 16).

Perturbed canvases go through the processor's tiling in torch (tiles + thumbnail), the method
maps live on the composite grid the record stores (tiles placed as describe places them, the
thumbnail left out), and the stage runs end to end and resumes."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from precompute.faithfulness.captioner import Session
from precompute.faithfulness.igos import IgosSettings
from precompute.faithfulness.methods import METHODS, Painting, last_layer_attention
from precompute.models import Captioner, load_captioner
from precompute.stages import describe, faithfulness, reliance
from testkit.fixture_faithfulness import hand_spanned
from testkit.harness import stage_args

torch.set_num_threads(1)
TILE, SIDE = 112, 4  # the tiny model's tile: 112 px, 4x4 tokens (precompute.tiny.internvl.TINY_TILE)
FAST = ["--device", "cpu", "--steps", "3", "--igos-iterations", "1", "--igos-ig-steps", "1",
        "--methods", ",".join(METHODS)]


@pytest.fixture(scope="module")
def tiny_internvl_dir(tmp_path_factory):
    from precompute.tiny.internvl import build_tiny_internvl

    return build_tiny_internvl(tmp_path_factory.mktemp("tiny-internvl"))


@pytest.fixture(scope="module")
def spanned(tiny_internvl_dir, tmp_path_factory):
    """Two described paintings (float64) with reliance and two spans placed on tokens by hand."""
    return hand_spanned(tiny_internvl_dir, tmp_path_factory.mktemp("spanned"), max_new_tokens=8)


@pytest.fixture(scope="module")
def captioner(tiny_internvl_dir):
    return load_captioner(str(tiny_internvl_dir), device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def record(spanned):
    return next(Dataset(spanned).records())


@pytest.fixture(scope="module")
def painting(spanned, record, captioner):
    with Image.open(Dataset(spanned).painting_dir(record.id) / record.canvas.path) as im:
        canvas = im.convert("RGB")
    return Painting.open(captioner, canvas, reliance.blurred(canvas, 0.1), record.prompt,
                         [t.id for t in record.tokens], [bool(t.visual) for t in record.tokens],
                         IgosSettings(iterations=2, ig_steps=2))


def layout(painting) -> tuple[int, int, bool]:
    """(cols, rows, thumbnail) from the canvas size alone: 112-px tiles, a thumbnail when several."""
    h, w = painting.session.canvas_hw
    cols, rows = w // TILE, h // TILE
    assert (cols * TILE, rows * TILE) == (w, h)
    return cols, rows, cols * rows > 1


def by_hand(values: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """(N,) values in image-token order -> the composite grid: tile k's 4x4 block at row k // cols,
    column k % cols; the thumbnail's block (the last) dropped."""
    blocks = [values[k * SIDE * SIDE:(k + 1) * SIDE * SIDE].reshape(SIDE, SIDE) for k in range(cols * rows)]
    return np.vstack([np.hstack(blocks[r * cols:(r + 1) * cols]) for r in range(rows)])


def test_the_painting_is_tiled_with_a_thumbnail(painting, record):
    cols, rows, thumbnail = layout(painting)
    s = painting.session
    assert cols * rows > 1 and thumbnail  # the smoke painting is 4x3 tiles
    assert s.grid == (rows * SIDE, cols * SIDE) == (record.grid.h, record.grid.w)
    assert s.image_pos.numel() == (cols * rows + 1) * SIDE * SIDE  # the prompt's <IMG_CONTEXT> tokens


def test_pixel_values_equal_the_processors(painting):
    """Tiles: the processor's to float precision (its pixel values are float32); the thumbnail:
    the processor resizes uint8 in integer arithmetic and rounds, ours in float: within 1 level."""
    cols, rows, _ = layout(painting)
    s = painting.session
    ip = s.captioner.processor.image_processor
    ours = s.pixel_values(torch.from_numpy(painting.image)[None].double())
    theirs = s.forced["pixel_values"].double()
    assert ours.shape == theirs.shape == (cols * rows + 1, 3, TILE, TILE)
    torch.testing.assert_close(ours[:-1], theirs[:-1], atol=1e-5, rtol=0)
    std = torch.tensor(ip.image_std, dtype=torch.float64)[:, None, None]
    levels = ((ours[-1] - theirs[-1]) * std * 255).abs()  # in 8-bit levels
    assert levels.max() < 1 and levels.mean() < 0.1
    # the thumbnail is the whole canvas at tile size: a crop of tile 0 is not it
    assert ((ours[-1] - ours[0]) * std * 255).abs().mean() > 5


def test_a_batch_gives_each_image_its_own_tiles(painting):
    s = painting.session
    images = torch.from_numpy(np.stack([painting.image, painting.baseline])).double()
    both = s.pixel_values(images)
    n = both.shape[0] // 2
    torch.testing.assert_close(both[:n], s.pixel_values(images[:1]))
    torch.testing.assert_close(both[n:], s.pixel_values(images[1:]))


def test_the_scorer_gives_the_reliance_stage_log_probabilities(painting, captioner, record):
    canvas = Image.fromarray(painting.image.astype(np.uint8))
    expected = reliance.answer_logprobs(captioner, canvas, record.prompt, [t.id for t in record.tokens])
    tokens = [1, 3, 4]
    got = painting.session.scorer(tokens)(painting.image[None])
    # the processor's thumbnail is rounded to uint8, ours is not: a small difference in log P
    assert got[0] == pytest.approx(expected[tokens].sum(), abs=1e-2)


def test_the_score_is_differentiable_through_the_tiles(painting):
    image = torch.from_numpy(painting.image).double()[None].requires_grad_(True)
    score = painting.session.torch_scorer([1, 2])(image).sum()
    (grad,) = torch.autograd.grad(score, image)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_map_of_the_composite_grid(painting, method):
    out = painting.span_map(method, [2, 3])
    assert out.u8.shape == painting.grid and out.u8.dtype == np.uint8
    assert np.isfinite([out.lo, out.hi]).all() and out.lo <= out.hi
    assert set(out.tokens) <= {2, 3}


def test_the_logit_map_places_each_tile_where_describe_does(painting):
    """relu(H[image] @ W[c]) computed here from the model's own states and placed by hand."""
    cols, rows, _ = layout(painting)
    s = painting.session
    with torch.inference_mode():
        hidden = s.model.model(**s.forced).last_hidden_state[0]  # (S, D)
        head = s.model.get_output_embeddings().weight
        for t in (0, 2):
            raw = (hidden[s.image_pos] @ head[s.generated[t]]).clamp_min(0).double().numpy()  # (N,)
            np.testing.assert_allclose(painting._logit_maps()[t], by_hand(raw, cols, rows), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_tam_equals_describes(painting, captioner, record, variant):
    """describe's own generation and maps on the same canvas (its tiles placed by describe's
    code) give the same maps, in both variants."""
    from precompute.captioner_inputs import batch_inputs
    from precompute.generation import generate_greedy

    canvas = Image.fromarray(painting.image.astype(np.uint8))
    inputs = batch_inputs(captioner, [canvas], [record.prompt])
    generation, = generate_greedy(captioner, inputs, 8)
    caption = describe.caption_of(captioner, generation, None, variant, canvas_size=canvas.size)
    assert caption.grid == painting.grid
    generated = [t.id for t in caption.tokens]
    fresh = Painting.open(captioner, canvas, canvas, record.prompt, generated, ended=len(generated) < 8)
    np.testing.assert_allclose(fresh._tam(variant), caption.raw["maps"], atol=1e-9)


def test_attention_is_the_placed_tiles_share(painting, tiny_internvl_dir):
    """Against transformers' own output_attentions of an eager-loaded copy of the model: the map
    sums to the share of attention the token gives the placed tiles (the thumbnail's left out)."""
    from transformers import InternVLForConditionalGeneration

    cols, rows, _ = layout(painting)
    s = painting.session
    eager = InternVLForConditionalGeneration.from_pretrained(tiny_internvl_dir, attn_implementation="eager",
                                                             dtype=torch.float64).eval()
    with torch.inference_mode():
        attn = eager(**s.forced, output_attentions=True).attentions[-1][0]  # (heads, S, S)
    torch.testing.assert_close(last_layer_attention(s).double(), attn)
    maps = painting._attention_maps()
    placed = s.image_pos[:cols * rows * SIDE * SIDE]
    for t in range(len(s.generated)):
        row = attn[:, s.n_prompt - 1 + t].mean(0)  # (S,)
        np.testing.assert_allclose(maps[t], by_hand(row[s.image_pos].numpy(), cols, rows), rtol=1e-9)
        assert maps[t].sum() == pytest.approx(float(row[placed].sum()))
        assert float(row[placed].sum()) < float(row[s.image_pos].sum())  # the thumbnail had some


def test_gradient_x_input_sums_to_the_directional_derivative(painting):
    """The placed tiles' gradient x input plus the thumbnail's is d/de f((1 + e) features) at 0 by
    central differences; the map holds the placed tiles' part."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    s = painting.session
    tokens = [2, 3]
    config = s.model.config
    kw = {k: v for k, v in s.forced.items() if k != "pixel_values"}
    with torch.no_grad():
        feats = s.model.model.get_image_features(s.forced["pixel_values"],
                                                 vision_feature_layer=config.vision_feature_layer,
                                                 vision_feature_select_strategy=config.vision_feature_select_strategy,
                                                 return_dict=True).pooler_output
        feats = feats.reshape(-1, feats.shape[-1])
        eps = 1e-3

        def f(scale, part=slice(None)):
            scaled = feats.clone()
            scaled[part] *= scale
            out = {"image": BaseModelOutputWithPooling(pooler_output=scaled)}
            return float(s.logprobs_of(kw, tokens, mm_encoder_outputs=out).sum())

        cols, rows, _ = layout(painting)
        placed = slice(0, cols * rows * SIDE * SIDE)
        numeric = (f(1 + eps, placed) - f(1 - eps, placed)) / (2 * eps)  # the placed tiles scaled alone
    assert painting._gradient_map(tokens).sum() == pytest.approx(numeric, rel=2e-2)


def test_a_family_whose_image_inputs_are_not_built_is_refused(painting, captioner):
    """The refusal stays for any family this module does not build the image inputs of (a tiled
    family other than InternVL's layout, say), with the reason."""
    other = dataclasses.replace(captioner.family, model_type="some_tiled", label="Some-Tiled")
    stranger = Captioner(captioner.model, captioner.processor, "x", "random", captioner.device, captioner.dtype,
                         other)
    canvas = Image.fromarray(painting.image.astype(np.uint8))
    with pytest.raises(ValueError, match="Some-Tiled's image inputs are not supported"):
        Session.open(stranger, canvas, "Describe", painting.session.generated)


def test_the_stage_runs_end_to_end_and_resumes(spanned, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST, "--per-token"])) == 0
    ds = Dataset(root)
    for record in ds.records():
        folder = ds.painting_dir(record.id)
        for span in record.spans:
            f = span.faithfulness
            assert f is not None and set(f.methods) == set(METHODS)
            for method, result in f.methods.items():
                u8 = read_png_u8(folder / result.map.png)
                assert u8.shape == (record.grid.h, record.grid.w), method
                if result.deletion is not None:
                    assert len(result.deletion) == 4 and result.deletion[0] == 1 and result.deletion[-1] == 0
                    assert np.isfinite(result.deletion + result.insertion).all()
        assert all(t.faithfulness is not None for t in record.tokens if t.map is not None)
        # the dataset's TAM variant is describe's span map (the mean of its stored token maps)
        from safetensors.numpy import load_file

        from contract.metrics import span_map

        maps = load_file(folder / "tam_raw.safetensors")["maps"]
        variant = record.provenance["tam"]["variant"]
        got = read_png_u8(folder / record.spans[0].faithfulness.methods[f"tam-{variant}"].map.png)
        assert np.array_equal(got, span_map(maps[[1, 2, 3]])[0])
    assert validate_dataset(root) == []
    capsys.readouterr()
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST, "--per-token"])) == 0
    assert "faithfulness: 0 done, 2 already done, 0 failed" in capsys.readouterr().out


def test_real_size_tiles_equal_the_processors(tmp_path):
    """InternVL3's real tiling (448-px tiles, 16x16 tokens, at most 12 + a thumbnail) on a 4:3
    painting: 4x3 tiles, a 48x64 composite grid, and the torch tiles equal the processor's."""
    from precompute.captioner_inputs import MAX_PIXELS, MIN_PIXELS
    from precompute.smoke import draw_painting
    from precompute.tiny.internvl import build_tiny_internvl

    captioner = load_captioner(str(build_tiny_internvl(tmp_path / "model", tile=448)), device="cpu", dtype="float32")
    canvas = captioner.family.model_image(draw_painting("village-under-stars", (1024, 768)), MIN_PIXELS, MAX_PIXELS,
                                          captioner.processor)
    assert canvas.size == (4 * 448, 3 * 448)
    tok = captioner.processor.tokenizer
    session = Session.open(captioner, canvas, "Describe this painting.", tok.encode(" A village"))
    assert session.grid == (48, 64) and session.image_pos.numel() == 13 * 256
    ours = session.pixel_values(torch.from_numpy(np.asarray(canvas, dtype=np.float32))[None])
    theirs = session.forced["pixel_values"]
    assert ours.shape == theirs.shape == (13, 3, 448, 448)
    torch.testing.assert_close(ours[:-1], theirs[:-1], atol=1e-5, rtol=0)
    std = torch.tensor(captioner.processor.image_processor.image_std)[:, None, None]
    levels = ((ours[-1] - theirs[-1]) * std * 255).abs()  # in 8-bit levels
    assert levels.max() < 1 and levels.mean() < 0.05
