"""The faithfulness stage on LLaVA-OneVision (precompute/tiny/llava_onevision.py, its real
tokenizer): 60-px crops of 4x4 tokens, a base image of the whole canvas first, a newline token
after each row of the crops' grid (issues 15 and 16).

Perturbed canvases go through the processor's AnyRes layout in torch (the base resized, the crops
cut), the method maps live on the crops' grid the record stores (the base and the newlines left
out, as describe leaves them out), and the stage runs end to end and resumes."""

from __future__ import annotations

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
from precompute.models import load_captioner
from precompute.stages import describe, faithfulness, reliance
from testkit.fixture_faithfulness import hand_spanned
from testkit.harness import stage_args

torch.set_num_threads(1)
CROP, SIDE = 60, 4  # the tiny model's crop: 60 px, 4x4 tokens (precompute.tiny.llava_onevision.TINY_CROP)
FAST = ["--device", "cpu", "--steps", "3", "--igos-iterations", "1", "--igos-ig-steps", "1",
        "--methods", ",".join(METHODS)]


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory):
    from precompute.tiny.llava_onevision import build_tiny_llava_onevision

    return build_tiny_llava_onevision(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def spanned(tiny_llava_dir, tmp_path_factory):
    """Two described paintings (float64) with reliance and two spans placed on tokens by hand."""
    return hand_spanned(tiny_llava_dir, tmp_path_factory.mktemp("spanned"), max_new_tokens=8)


@pytest.fixture(scope="module")
def captioner(tiny_llava_dir):
    return load_captioner(str(tiny_llava_dir), device="cpu", dtype="float64")


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


def layout(painting) -> tuple[int, int]:
    """(cols, rows) of crops from the canvas size alone: 60-px crops."""
    h, w = painting.session.canvas_hw
    cols, rows = w // CROP, h // CROP
    assert (cols * CROP, rows * CROP) == (w, h)
    return cols, rows


def by_hand(values: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """(N,) values in image-token order -> the crops' grid: the base's SIDE x SIDE first (dropped),
    then rows*SIDE rows of cols*SIDE cells each followed by a newline (dropped)."""
    crops = values[SIDE * SIDE:]
    assert crops.size == rows * SIDE * (cols * SIDE + 1)
    return crops.reshape(rows * SIDE, cols * SIDE + 1)[:, :-1]


def placed_positions(cols: int, rows: int) -> np.ndarray:
    """Indices (into the image tokens) of the crops' cells: neither the base nor a newline."""
    index = np.arange(SIDE * SIDE + rows * SIDE * (cols * SIDE + 1))
    return by_hand(index, cols, rows).ravel()


def test_the_canvas_is_a_base_and_whole_crops(painting, record):
    cols, rows = layout(painting)
    s = painting.session
    assert cols * rows > 1  # the smoke painting has several crops
    assert s.grid == (rows * SIDE, cols * SIDE) == (record.grid.h, record.grid.w)
    # the prompt's <image> tokens: the base, then the crops' grid with a newline per row
    assert s.image_pos.numel() == SIDE * SIDE + rows * SIDE * (cols * SIDE + 1)


def test_pixel_values_equal_the_processors(painting):
    """Crops: the processor's to float precision (its pixel values are float32), and the canvas's
    own pixels normalised (mean = std = 0.5); the base: the processor resizes the uint8 canvas to
    one crop (bicubic with antialias, not padded to a square) in integer arithmetic and rounds,
    ours in float: within 1 level."""
    cols, rows = layout(painting)
    s = painting.session
    ours = s.pixel_values(torch.from_numpy(painting.image)[None].double())
    theirs = s.forced["pixel_values"].double()
    assert ours.shape == theirs.shape == (1, 1 + cols * rows, 3, CROP, CROP)
    torch.testing.assert_close(ours[:, 1:], theirs[:, 1:], atol=1e-5, rtol=0)
    for k in range(cols * rows):  # crop k: rows of crops top to bottom, each left to right
        r, c = divmod(k, cols)
        block = painting.image[r * CROP:(r + 1) * CROP, c * CROP:(c + 1) * CROP].transpose(2, 0, 1).astype(np.float64)
        np.testing.assert_allclose(ours[0, 1 + k].numpy(), (block / 255.0 - 0.5) / 0.5, atol=1e-12)
    levels = ((ours[0, 0] - theirs[0, 0]) * 0.5 * 255).abs()  # in 8-bit levels (std 0.5)
    assert levels.max() < 1 and levels.mean() < 0.2
    # the base is the whole canvas at crop size: crop 0 is not it
    assert ((ours[0, 0] - ours[0, 1]) * 0.5 * 255).abs().mean() > 5


def test_a_batch_gives_each_image_its_own_crops(painting):
    s = painting.session
    images = torch.from_numpy(np.stack([painting.image, painting.baseline])).double()
    both = s.pixel_values(images)
    assert both.shape[0] == 2
    torch.testing.assert_close(both[:1], s.pixel_values(images[:1]))
    torch.testing.assert_close(both[1:], s.pixel_values(images[1:]))
    assert not torch.equal(both[0], both[1])
    inputs = s.batch_inputs(images)
    assert inputs["image_sizes"].tolist() == [list(s.canvas_hw)] * 2
    assert inputs["input_ids"].shape[0] == 2


def test_the_scorer_gives_the_reliance_stage_log_probabilities(painting, captioner, record):
    """A batch of the canvas and its baseline: with the processor's own pixel values in it, each
    row gives the reliance stage's log P of its image (the batch's image_sizes and tokens are
    right); with ours, the same but for the base's rounding (within 0.02 on this random model)."""
    from precompute.captioner_inputs import prompt_inputs

    s = painting.session
    tokens = [1, 3, 4]
    images = np.stack([painting.image, painting.baseline])
    expected, theirs = [], []
    for image in images:
        pil = Image.fromarray(image.astype(np.uint8))
        expected.append(reliance.answer_logprobs(captioner, pil, record.prompt, s.generated)[tokens])
        theirs.append(prompt_inputs(captioner, pil, record.prompt)["pixel_values"])
    expected = np.array(expected)  # (2, K)
    kw = s.batch_inputs(torch.from_numpy(images).double())
    ours = kw["pixel_values"]
    with torch.inference_mode():
        kw["pixel_values"] = torch.cat(theirs).to(ours.dtype)
        np.testing.assert_allclose(s.logprobs_of(kw, tokens).numpy(), expected, atol=1e-9)
        kw["pixel_values"] = torch.cat([kw["pixel_values"][:, :1], ours[:, 1:]], 1)  # the processor's base, our crops
        np.testing.assert_allclose(s.logprobs_of(kw, tokens).numpy(), expected, atol=1e-5)
    got = s.scorer(tokens)(images)
    np.testing.assert_allclose(got, expected.sum(1), atol=2e-2)


def test_the_score_is_differentiable_through_the_base_and_crops(painting):
    image = torch.from_numpy(painting.image).double()[None].requires_grad_(True)
    score = painting.session.torch_scorer([1, 2])(image).sum()
    (grad,) = torch.autograd.grad(score, image)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the last 4 px of each crop (right and bottom) are seen by no patch but by the base: small, not zero
    assert grad[0, :, CROP - 4:CROP].abs().sum() > 0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_map_of_the_crops_grid(painting, record, method):
    out = painting.span_map(method, [2, 3])
    assert out.u8.shape == painting.grid == (record.grid.h, record.grid.w) and out.u8.dtype == np.uint8
    assert np.isfinite([out.lo, out.hi]).all() and out.lo <= out.hi
    assert set(out.tokens) <= {2, 3}


def test_the_logit_map_leaves_the_base_and_newlines_out(painting):
    """relu(H[image] @ W[c]) computed here from the model's own states and placed by hand."""
    cols, rows = layout(painting)
    s = painting.session
    with torch.inference_mode():
        hidden = s.model.model(**s.forced).last_hidden_state[0]  # (S, D)
        head = s.model.get_output_embeddings().weight
        for t in (0, 2):
            raw = (hidden[s.image_pos] @ head[s.generated[t]]).clamp_min(0).double().numpy()  # (N,)
            np.testing.assert_allclose(painting._logit_maps()[t], by_hand(raw, cols, rows), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_tam_equals_describes(painting, captioner, record, variant):
    """describe's own generation and maps on the same canvas give the same maps, in both variants."""
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


def test_attention_is_the_crops_share(painting, tiny_llava_dir):
    """Against transformers' own output_attentions of an eager-loaded copy of the model: the map
    sums to the share of attention the token gives the crops' cells (base and newlines left out)."""
    from transformers import LlavaOnevisionForConditionalGeneration

    cols, rows = layout(painting)
    s = painting.session
    eager = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny_llava_dir, attn_implementation="eager",
                                                                   dtype=torch.float64).eval()
    with torch.inference_mode():
        attn = eager(**s.forced, output_attentions=True).attentions[-1][0]  # (heads, S, S)
    torch.testing.assert_close(last_layer_attention(s).double(), attn)
    maps = painting._attention_maps()
    placed = s.image_pos[placed_positions(cols, rows)]
    for t in range(len(s.generated)):
        row = attn[:, s.n_prompt - 1 + t].mean(0)  # (S,)
        np.testing.assert_allclose(maps[t], by_hand(row[s.image_pos].numpy(), cols, rows), rtol=1e-9)
        assert maps[t].sum() == pytest.approx(float(row[placed].sum()))
        assert float(row[placed].sum()) < float(row[s.image_pos].sum())  # the base and newlines had some


def test_gradient_x_input_sums_to_the_directional_derivative(painting):
    """The crops' cells' gradient x input is d/de f(features, the crops' cells scaled by 1 + e) at
    0 by central differences (the base and newlines unscaled); the map holds exactly those cells."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    cols, rows = layout(painting)
    s = painting.session
    tokens = [2, 3]
    kw = {k: v for k, v in s.forced.items() if k != "pixel_values"}
    with torch.no_grad():
        feats = torch.cat(s.model.model.get_image_features(s.forced["pixel_values"], s.forced["image_sizes"],
                                                           return_dict=True).pooler_output)  # (N, D)
        assert feats.shape[0] == s.image_pos.numel()
        placed = torch.from_numpy(placed_positions(cols, rows))
        eps = 1e-3

        def f(scale):
            scaled = feats.clone()
            scaled[placed] *= scale
            out = {"image": BaseModelOutputWithPooling(pooler_output=(scaled,))}
            return float(s.logprobs_of(kw, tokens, mm_encoder_outputs=out).sum())

        numeric = (f(1 + eps) - f(1 - eps)) / (2 * eps)
    assert painting._gradient_map(tokens).sum() == pytest.approx(numeric, rel=2e-2)


def test_the_stage_runs_end_to_end_and_resumes(spanned, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(spanned, root)
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST, "--per-token"])) == 0
    ds = Dataset(root)
    from safetensors.numpy import load_file

    from contract.metrics import span_map

    n = 0
    for record in ds.records():
        n += 1
        assert not [f for f in record.failures if f.stage == "faithfulness"]
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
        maps = load_file(folder / "tam_raw.safetensors")["maps"]
        variant = record.provenance["tam"]["variant"]
        got = read_png_u8(folder / record.spans[0].faithfulness.methods[f"tam-{variant}"].map.png)
        assert np.array_equal(got, span_map(maps[[1, 2, 3]])[0])
    assert n == 2
    assert validate_dataset(root) == []
    capsys.readouterr()
    assert faithfulness.run(stage_args(faithfulness, [root, *FAST, "--per-token"])) == 0
    assert "faithfulness: 0 done, 2 already done, 0 failed" in capsys.readouterr().out


def test_real_size_crops_equal_the_processors(tmp_path):
    """LLaVA-OneVision's real crops (384 px, 27x27 tokens) on a 4:3 painting: the torch base and
    crops equal the processor's (crops exactly, the base within one 8-bit level)."""
    from precompute.smoke import draw_painting
    from precompute.tiny.llava_onevision import build_tiny_llava_onevision

    captioner = load_captioner(str(build_tiny_llava_onevision(tmp_path / "model", crop=384)), device="cpu",
                               dtype="float32")
    canvas = captioner.family.model_image(draw_painting("village-under-stars", (1024, 768)), 0, 0,
                                          captioner.processor)
    cols, rows = canvas.width // 384, canvas.height // 384
    assert (cols * 384, rows * 384) == canvas.size and cols * rows > 1
    tok = captioner.processor.tokenizer
    session = Session.open(captioner, canvas, "Describe this painting.", tok.encode(" A village"))
    assert session.grid == (rows * 27, cols * 27) and session.image_pos.numel() == 729 + rows * 27 * (cols * 27 + 1)
    ours = session.pixel_values(torch.from_numpy(np.asarray(canvas, dtype=np.float32))[None])
    theirs = session.forced["pixel_values"]
    assert ours.shape == theirs.shape == (1, 1 + cols * rows, 3, 384, 384)
    torch.testing.assert_close(ours[:, 1:], theirs[:, 1:], atol=1e-5, rtol=0)
    levels = ((ours[0, 0] - theirs[0, 0]) * 0.5 * 255).abs()  # in 8-bit levels
    assert levels.max() < 1 and levels.mean() < 0.1


def test_a_family_whose_image_inputs_are_not_built_is_still_refused(painting, captioner):
    """LLaVA-OneVision's layout under another family name is not built: refused with the reason."""
    import dataclasses

    from precompute.models import Captioner

    other = dataclasses.replace(captioner.family, model_type="some_anyres", label="Some-AnyRes")
    stranger = Captioner(captioner.model, captioner.processor, "x", "random", captioner.device, captioner.dtype,
                         other)
    canvas = Image.fromarray(painting.image.astype(np.uint8))
    with pytest.raises(ValueError, match="Some-AnyRes's image inputs are not supported"):
        Session.open(stranger, canvas, "Describe", painting.session.generated)
