"""Visual reliance on a tiny random-weight Qwen2-VL: the teacher-forced log-probabilities are
the model's own (no off-by-one), the blur, the threshold and the stage's bookkeeping."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from contract.store import Dataset
from contract.validate import validate_dataset
from precompute.captioner_inputs import prompt_inputs, teacher_forced_inputs
from precompute.models import load_captioner
from precompute.stages import describe, reliance
from testkit.harness import stage_args

torch.set_num_threads(1)



@pytest.fixture(scope="module")
def described(tiny_qwen2vl_dir, tmp_path_factory):
    from precompute.smoke import write_smoke_paintings

    paintings = write_smoke_paintings(tmp_path_factory.mktemp("paintings"))
    for extra in ("portrait-in-blue.png", "village-under-stars.png"):  # two paintings are enough
        (paintings / extra).unlink()
    out = tmp_path_factory.mktemp("ds") / "ds"
    assert describe.run(stage_args(describe, [paintings, out, "--model", tiny_qwen2vl_dir, "--device", "cpu",
                                              "--max-new-tokens", "24"])) == 0
    return out


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def captioner(request, tiny_qwen2vl_dir, tmp_path_factory):
    if request.param == "qwen2_vl":
        return load_captioner(str(tiny_qwen2vl_dir), device="cpu")
    from precompute.tiny.qwen2vl import build_tiny_qwen2vl

    folder = build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"), family="qwen2_5_vl")
    return load_captioner(str(folder), device="cpu")


def test_teacher_forcing_scores_the_greedy_tokens(captioner):
    """Greedy decoding picks the argmax, so each generated token must be the most likely one at
    its teacher-forced position, with the same log-probability as the full logits give."""
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (224, 280, 3), dtype=np.uint8))
    prompt = "Describe the content and style of this image."
    inputs = prompt_inputs(captioner, image, prompt)
    n_prompt = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        out = captioner.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    generated = out[0, n_prompt:].tolist()
    assert len(generated) == 12
    logp = reliance.answer_logprobs(captioner, image, prompt, generated)  # (T,)
    with torch.inference_mode():  # every position's logits, the LM head over the whole sequence; float64:
        # torch's float32 log_softmax over 151,936 logits is off by up to 3e-4
        full = captioner.model(**teacher_forced_inputs(inputs, generated)).logits[0].double().log_softmax(-1)  # (S, V)
    expected = full[n_prompt - 1:-1]  # position p predicts token p + 1
    assert expected.argmax(-1).tolist() == generated
    np.testing.assert_allclose(logp, expected.gather(1, torch.tensor(generated)[:, None])[:, 0].numpy(),
                               atol=1e-4)
    assert logp.shape == (12,) and (logp <= 0).all()


def test_blur_scales_with_the_canvas():
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (100, 140, 3), dtype=np.uint8))
    big = small.resize((560, 400), Image.Resampling.NEAREST)
    for image in (small, big):
        out = np.asarray(reliance.blurred(image, 0.1), dtype=float)
        assert out.shape == np.asarray(image).shape
        assert out.std() < 0.1 * np.asarray(image, dtype=float).std()  # nothing of the texture survives
    # the same relative blur: the big blurred image, scaled down, is the small one blurred
    down = np.asarray(reliance.blurred(big, 0.1).resize(small.size, Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(down - np.asarray(reliance.blurred(small, 0.1), dtype=float)).mean() < 2
    assert np.array_equal(np.asarray(reliance.blurred(small, 0)), np.asarray(small))


def test_visual_flags_skip_the_first_token():
    assert reliance.visual_flags([5.0, 0.5, 1.0, 1.01, -3.0], 1.0) == [False, False, False, True, False]


def test_stage_end_to_end(described, tmp_path, tiny_qwen2vl_dir, capsys):
    root = tmp_path / "ds"
    shutil.copytree(described, root)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu"])) == 0  # model: the dataset's captioner
    ds = Dataset(root)
    settings = ds.manifest().settings["reliance"]
    assert settings["model"] == str(tiny_qwen2vl_dir) and settings["threshold"] == 1.0 and settings["blur"] == 0.1
    values = []
    for record in ds.records():
        rel = [t.reliance for t in record.tokens]
        assert all(isinstance(v, float) and np.isfinite(v) for v in rel)
        assert [t.visual for t in record.tokens] == reliance.visual_flags(rel, 1.0)
        prov = record.provenance["reliance"]
        assert prov["answer_llr"] == pytest.approx(sum(rel), abs=1e-3)
        assert prov["answer_llr"] == pytest.approx(prov["logp_image"] - prov["logp_blurred"], abs=1e-2)
        assert prov["n_visual"] == sum(t.visual for t in record.tokens)
        values += rel
    assert np.std(values) > 0.05  # the blurred image does change the model's predictions
    assert validate_dataset(root) == []

    # a new threshold redoes every painting and moves the flags; the same settings skip
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--threshold", "0.05"])) == 0
    for record in ds.records():
        assert [t.visual for t in record.tokens] == reliance.visual_flags([t.reliance for t in record.tokens], 0.05)
    assert ds.manifest().settings["reliance"]["threshold"] == 0.05
    assert sum(t.visual for r in ds.records() for t in r.tokens) > sum(v > 1.0 for v in values)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--threshold", "0.05"])) == 0
    assert "reliance: 0 done, 2 already done, 0 failed" in capsys.readouterr().out


def test_no_blur_means_no_reliance(described, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(described, root)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--blur", "0"])) == 0
    for record in Dataset(root).records():
        assert all(t.reliance == 0.0 and t.visual is False for t in record.tokens)


def test_another_captioner_is_refused(described, tmp_path, tiny_qwen2vl_dir):
    root = tmp_path / "ds"
    shutil.copytree(described, root)
    other = tmp_path / "other-model"
    shutil.copytree(tiny_qwen2vl_dir, other)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--model", other])) == 1
    errors = [f.error for f in Dataset(root).manifest().failures]
    assert len(errors) == 2 and all("same model" in e for e in errors)
