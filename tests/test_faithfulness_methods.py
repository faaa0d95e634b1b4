"""Every map method on the tiny Qwen2-VL (real tokenizer): finite maps of grid size, each
checked against an independent path where there is one (issue 15, Tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contract.store import Dataset
from precompute.faithfulness.igos import IgosSettings
from precompute.faithfulness.methods import METHODS, Painting, last_layer_attention
from precompute.models import load_captioner
from precompute.stages import describe, reliance
from testkit.harness import stage_args

torch.set_num_threads(1)



@pytest.fixture(scope="module")
def described(tiny_qwen2vl_dir, tmp_path_factory):
    from precompute.smoke import write_smoke_paintings

    paintings = write_smoke_paintings(tmp_path_factory.mktemp("paintings"))
    for extra in ("portrait-in-blue.png", "village-under-stars.png", "harbour-at-dusk.png"):
        (paintings / extra).unlink()
    out = tmp_path_factory.mktemp("ds") / "ds"
    common = ["--model", tiny_qwen2vl_dir, "--device", "cpu", "--dtype", "float64"]
    assert describe.run(stage_args(describe, [paintings, out, "--max-new-tokens", "12", *common])) == 0
    assert reliance.run(stage_args(reliance, [out, *common])) == 0
    return Dataset(out)


@pytest.fixture(scope="module")
def captioner(tiny_qwen2vl_dir):
    return load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")


@pytest.fixture(scope="module")
def painting(described, captioner):
    record = next(described.records())
    with Image.open(described.painting_dir(record.id) / record.canvas.path) as im:
        canvas = im.convert("RGB")
    return Painting.open(captioner, canvas, reliance.blurred(canvas, 0.1), record.prompt,
                         [t.id for t in record.tokens], [bool(t.visual) for t in record.tokens],
                         IgosSettings(iterations=2, ig_steps=2))


def test_pixel_values_equal_the_processors(painting, captioner):
    s = painting.session
    ours = s.pixel_values(torch.from_numpy(painting.image)[None].double())
    theirs = s.forced["pixel_values"]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=1e-5, rtol=0)


def test_the_scorer_gives_the_reliance_stage_log_probabilities(painting, captioner, described):
    record = next(described.records())
    canvas = Image.fromarray(painting.image.astype(np.uint8))
    expected = reliance.answer_logprobs(captioner, canvas, record.prompt, [t.id for t in record.tokens])
    tokens = [1, 3, 4]
    got = painting.session.scorer(tokens)(np.stack([painting.image, painting.baseline]))
    assert got[0] == pytest.approx(expected[tokens].sum(), abs=1e-4)  # reliance reads float32 logits
    blurred = reliance.answer_logprobs(captioner, Image.fromarray(painting.baseline.astype(np.uint8)),
                                       record.prompt, [t.id for t in record.tokens])
    assert got[1] == pytest.approx(blurred[tokens].sum(), abs=1e-3)  # the baseline as float vs as uint8


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_grid_map(painting, method):
    out = painting.span_map(method, [2, 3])
    assert out.u8.shape == painting.grid and out.u8.dtype == np.uint8
    assert np.isfinite([out.lo, out.hi]).all() and out.lo <= out.hi
    assert set(out.tokens) <= {2, 3}


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_tam_equals_describes(painting, captioner, described, variant):
    """describe's own generation and maps on the same canvas give the same maps, in both variants."""
    from precompute.captioner_inputs import batch_inputs
    from precompute.generation import generate_greedy

    record = next(described.records())
    canvas = Image.fromarray(painting.image.astype(np.uint8))
    inputs = batch_inputs(captioner, [canvas], [record.prompt])
    generation, = generate_greedy(captioner, inputs, 12)
    caption = describe.caption_of(captioner, generation, inputs["image_grid_thw"][0], variant)
    generated = [t.id for t in caption.tokens]
    fresh = Painting.open(captioner, canvas, canvas, record.prompt, generated, ended=len(generated) < 12)
    np.testing.assert_allclose(fresh._tam(variant), caption.raw["maps"], atol=1e-9)


def test_attention_sums_to_the_image_share_of_the_attention(painting, tiny_qwen2vl_dir):
    """Against transformers' own output_attentions of an eager-loaded copy of the model."""
    from transformers import Qwen2VLForConditionalGeneration

    s = painting.session
    eager = Qwen2VLForConditionalGeneration.from_pretrained(tiny_qwen2vl_dir, attn_implementation="eager",
                                                            dtype=torch.float64).eval()
    with torch.inference_mode():
        attn = eager(**s.forced, output_attentions=True).attentions[-1][0]  # (heads, S, S)
    torch.testing.assert_close(last_layer_attention(s).double(), attn)
    torch.testing.assert_close(attn.sum(-1), torch.ones_like(attn.sum(-1)), atol=1e-6, rtol=0)  # softmax in float32
    maps = painting._attention_maps()  # (T, gh, gw)
    for t in range(len(s.generated)):
        share = attn[:, s.n_prompt - 1 + t][:, s.image_pos].sum(-1).mean()
        assert maps[t].sum() == pytest.approx(float(share))
        assert 0 < maps[t].sum() <= 1
    assert s.model.config.text_config._attn_implementation != "eager"  # switched back


def test_gradient_x_input_sums_to_the_directional_derivative(painting):
    """sum_i grad_i . e_i = d/de f((1 + e) features) at 0, by central differences (e = 1e-3: the
    model's RMS norms compute in float32 even in a float64 model, so smaller steps read noise)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    s = painting.session
    tokens = [2, 3]
    total = painting._gradient_map(tokens).sum()
    kw = {k: v for k, v in s.forced.items() if k != "pixel_values"}
    with torch.no_grad():
        feats = torch.cat(s.model.model.get_image_features(s.forced["pixel_values"], s.forced["image_grid_thw"],
                                                           return_dict=True).pooler_output)
        eps = 1e-3

        def f(scale):
            out = {"image": BaseModelOutputWithPooling(pooler_output=(feats * scale,))}
            return float(s.logprobs_of(kw, tokens, mm_encoder_outputs=out).sum())

        numeric = (f(1 + eps) - f(1 - eps)) / (2 * eps)
    assert total == pytest.approx(numeric, rel=2e-2)


def test_igos_scores_the_spans_visually_relevant_tokens(painting):
    visual = painting.visual
    painting.visual = [False, True, True, False] + [False] * (len(visual) - 4)
    try:
        assert painting.igos_tokens([0, 1, 3]) == [1]
        assert painting.igos_tokens([0, 3]) == [0, 3]  # none relevant: all the span's tokens
        painting.visual[0] = True
        assert painting.igos_tokens([0, 3]) == [0, 3]  # the first token never counts as relevant
    finally:
        painting.visual = visual


def test_bad_requests_are_refused(painting):
    with pytest.raises(ValueError, match="unknown method"):
        painting.span_map("gradcam", [1])
    with pytest.raises(ValueError):
        painting.span_map("logit", [])
    with pytest.raises(ValueError):
        painting.span_map("logit", [999])
