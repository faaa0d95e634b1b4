"""One vision pass per image (issue 10, point 4): describe takes the states TAM reads and
log P(token | image) while it generates, and reliance runs only its blurred pass.

The old path is computed here independently, as it was: plain `generate`, then a teacher-forced
pass over prompt + caption for the states (`last_hidden_state`) and the with-image log P (every
position's logits, float64 log-softmax). On the float64 tiny models the maps must be the same
8-bit maps and reliance the same within 1e-9."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file, save_file

from contract.commit import commit_painting
from contract.inputs import scan_input
from contract.names import painting_id
from contract.store import Dataset, read_png_u8
from precompute.captioner_inputs import model_image, prompt_inputs, teacher_forced_inputs
from precompute.generation import generate_greedy
from precompute.models import Lazy, load_captioner
from precompute.paintings import load_painting
from precompute.runner import stamp
from precompute.stages import describe, reliance
from precompute.tam import compute_tam
from testkit.harness import stage_args

torch.set_num_threads(1)
PROMPT = describe.DEFAULT_PROMPT
NEW_TOKENS = 14



@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
    from precompute.smoke import write_smoke_paintings

    folder = write_smoke_paintings(tmp_path_factory.mktemp("paintings"))
    for extra in ("portrait-in-blue.png", "village-under-stars.png"):  # two paintings are enough
        (folder / extra).unlink()
    return folder


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def captioner64(request, tiny_qwen2vl_dir, tmp_path_factory):
    folder = tiny_qwen2vl_dir
    if request.param == "qwen2_5_vl":
        from precompute.tiny.qwen2vl import build_tiny_qwen2vl

        folder = build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"), family="qwen2_5_vl")
    return load_captioner(str(folder), device="cpu", dtype="float64")


def two_pass(cap, image, prompt, max_new_tokens):
    """The old describe: generate, then a teacher-forced pass. (answer, generated, states (S, D),
    log P (T,) from every position's logits, inputs)."""
    inputs = prompt_inputs(cap, image, prompt)
    n_prompt = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        out = cap.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    answer = out[0, n_prompt:].tolist()
    tok = cap.processor.tokenizer
    stops = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    stops |= set(np.atleast_1d(cap.model.generation_config.eos_token_id).tolist())
    generated = answer[:next((i for i, t in enumerate(answer) if t in stops), len(answer))]
    forced = teacher_forced_inputs(inputs, generated)
    with torch.inference_mode():
        hidden = cap.model.model(**forced).last_hidden_state[0]  # (S, D)
        logits = cap.model(**forced).logits[0].double()  # (S, V)
    logp = logits.log_softmax(-1)[n_prompt - 1:-1].gather(1, torch.tensor(generated)[:, None])[:, 0]
    return answer, generated, hidden, logp.numpy(), inputs


def test_generation_keeps_the_teacher_forced_states(captioner64):
    """The states and log P taken while generating are the teacher-forced pass's, whether the
    caption stops at the length limit or on an end token."""
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (252, 308, 3), dtype=np.uint8))
    answer, generated, hidden, logp, inputs = two_pass(captioner64, image, PROMPT, NEW_TOKENS)
    assert len(generated) == NEW_TOKENS  # random weights: no end token within the limit
    row, = generate_greedy(captioner64, inputs, NEW_TOKENS)
    assert row.answer == answer and row.prompt_ids == inputs["input_ids"][0].tolist()
    n = inputs["input_ids"].shape[1] + len(generated)
    assert row.hidden.shape[0] >= n  # the last token's state too: one step past the limit
    np.testing.assert_allclose(row.hidden[:n].numpy(), hidden.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(row.logp[:len(generated)].numpy(), logp, rtol=0, atol=1e-9)

    # the same caption ended by an end token after 5 tokens: make its 6th token an end token
    config = captioner64.model.generation_config
    saved = config.eos_token_id
    stop = answer[5]
    if stop in answer[:5]:
        pytest.skip("the 6th token repeats an earlier one")
    try:
        config.eos_token_id = [stop]
        answer5, generated5, hidden5, logp5, _ = two_pass(captioner64, image, PROMPT, NEW_TOKENS)
        row5, = generate_greedy(captioner64, inputs, NEW_TOKENS)
    finally:
        config.eos_token_id = saved
    assert answer5 == answer[:6] and generated5 == answer[:5] and row5.answer == answer5
    n5 = inputs["input_ids"].shape[1] + 5
    np.testing.assert_allclose(row5.hidden[:n5].numpy(), hidden5.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(row5.logp[:5].numpy(), logp5, rtol=0, atol=1e-9)


class VisionCalls:
    def __init__(self, cap):
        self.n = 0
        self.handle = cap.model.model.visual.register_forward_hook(self._count)

    def _count(self, *args):
        self.n += 1


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_describe_maps_and_reliance_equal_the_two_pass_path(paintings, tiny_qwen2vl_dir, tmp_path, variant):
    """describe (one vision pass) stores the 8-bit maps of the old two-pass path, and reliance
    from describe's log P plus one blurred pass is the old LLR within 1e-9."""
    root = tmp_path / "ds"
    args = stage_args(describe, [paintings, root, "--model", tiny_qwen2vl_dir, "--device", "cpu", "--dtype", "float64",
                            "--max-new-tokens", NEW_TOKENS, "--tam-variant", variant])
    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")
    calls = VisionCalls(cap)
    lazy = Lazy(lambda: cap, "describe")
    ds = Dataset(root)
    for painting in scan_input(paintings).paintings:  # the stage's own per-painting function, the model counted
        calls.n = 0
        out = describe.describe_one(painting, args, lazy)
        assert calls.n == 1  # one vision pass per image
        commit_painting(ds, stamp(out.record, "describe", describe.settings_of(args)), out.files)
    calls.handle.remove()

    tok, head = cap.processor.tokenizer, cap.model.get_output_embeddings()
    for path in sorted(paintings.glob("*.png")):
        pid = painting_id(path.name)
        rec = ds.record(pid)
        canvas = model_image(load_painting(path).image)
        answer, generated, hidden, logp, inputs = two_pass(cap, canvas, PROMPT, NEW_TOKENS)
        assert [t.id for t in rec.tokens] == generated
        full = torch.tensor(inputs["input_ids"][0].tolist() + generated)
        n_prompt = inputs["input_ids"].shape[1]
        image_pos = (full == cap.image_token_id).nonzero()[:, 0]
        vision_end = int((full == tok.convert_tokens_to_ids("<|vision_end|>")).nonzero()[0, 0])
        im_end = next(i for i in range(vision_end, n_prompt) if full[i] == tok.convert_tokens_to_ids("<|im_end|>"))
        prompt_pos = list(range(vision_end + 1, im_end))
        ref = None
        if variant == "reference":
            ref, _ = describe.reference_inputs(tok, hidden, head, full[prompt_pos].tolist(), answer, prompt_pos[0])
        old = compute_tam(hidden, head.weight, full, image_pos, (rec.grid.h, rec.grid.w), torch.tensor(prompt_pos),
                          torch.arange(n_prompt, n_prompt + len(generated)), lm_head_bias=head.bias, reference=ref)
        for token in rec.tokens:
            np.testing.assert_array_equal(read_png_u8(ds.painting_dir(pid) / token.map.png), old.maps_u8[token.index])
        raw = load_file(ds.painting_dir(pid) / "tam_raw.safetensors")
        np.testing.assert_allclose(raw[describe.LOGP_KEY], logp, rtol=0, atol=1e-9)

        # reliance: describe's log P + the blurred pass vs the old two passes (with image: the
        # canvas the caption was generated from; without: the blurred canvas.jpg, as before)
        with Image.open(ds.painting_dir(pid) / "canvas.jpg") as im:
            saved = im.convert("RGB")
        calls = VisionCalls(cap)
        stored = reliance.described_logprobs(ds, rec, cap)
        with_image, without, source = reliance.reliance_of(cap, saved, rec.prompt, generated, 0.1, stored)
        assert calls.n == 1 and source == "describe"  # the blurred pass only
        calls.handle.remove()
        old_without = teacher_forced_logp(cap, reliance.blurred(saved, 0.1), generated)
        np.testing.assert_allclose(with_image - without, logp - old_without, rtol=0, atol=1e-9)


def teacher_forced_logp(cap, image, generated) -> np.ndarray:
    inputs = prompt_inputs(cap, image, PROMPT)
    with torch.inference_mode():
        logits = cap.model(**teacher_forced_inputs(inputs, generated)).logits[0].double()
    n_prompt = inputs["input_ids"].shape[1]
    return logits.log_softmax(-1)[n_prompt - 1:-1].gather(1, torch.tensor(generated)[:, None])[:, 0].numpy()


@pytest.fixture(scope="module")
def described64(paintings, tiny_qwen2vl_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ds64") / "ds"
    assert describe.run(stage_args(describe, [paintings, root, "--model", tiny_qwen2vl_dir, "--device", "cpu",
                                         "--dtype", "float64", "--max-new-tokens", NEW_TOKENS])) == 0
    return root


def test_reliance_stage_reads_describes_logp(described64, tmp_path, tiny_qwen2vl_dir):
    root = tmp_path / "ds"
    shutil.copytree(described64, root)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--dtype", "float64"])) == 0
    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")
    ds = Dataset(root)
    for rec in ds.records():
        assert rec.provenance["reliance"]["logp_image_from"] == "describe"
        generated = [t.id for t in rec.tokens]
        with Image.open(ds.painting_dir(rec.id) / "canvas.jpg") as im:
            saved = im.convert("RGB")
        logp = load_file(ds.painting_dir(rec.id) / "tam_raw.safetensors")[describe.LOGP_KEY]
        want = logp - teacher_forced_logp(cap, reliance.blurred(saved, 0.1), generated)
        np.testing.assert_allclose([t.reliance for t in rec.tokens], want, rtol=0, atol=0.5e-4 + 1e-9)  # rounded


def test_datasets_without_stored_logp_get_the_two_pass_reliance(described64, tmp_path, tiny_qwen2vl_dir):
    """A dataset described before describe kept log P: reliance runs both passes on canvas.jpg,
    as it always did."""
    root = tmp_path / "ds"
    shutil.copytree(described64, root)
    ds = Dataset(root)
    for rec in ds.records():
        path = ds.painting_dir(rec.id) / "tam_raw.safetensors"
        raw = load_file(path)
        del raw[describe.LOGP_KEY]
        save_file(raw, path)
    assert reliance.run(stage_args(reliance, [root, "--device", "cpu", "--dtype", "float64"])) == 0
    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")
    for rec in ds.records():
        assert rec.provenance["reliance"]["logp_image_from"] == "teacher-forced pass"
        generated = [t.id for t in rec.tokens]
        with Image.open(ds.painting_dir(rec.id) / "canvas.jpg") as im:
            saved = im.convert("RGB")
        stored = reliance.described_logprobs(ds, rec, cap)
        assert stored is None
        calls = VisionCalls(cap)
        with_image, without, source = reliance.reliance_of(cap, saved, rec.prompt, generated, 0.1, stored)
        assert calls.n == 2 and source == "teacher-forced pass"
        calls.handle.remove()
        want = teacher_forced_logp(cap, saved, generated) - teacher_forced_logp(cap, reliance.blurred(saved, 0.1),
                                                                                generated)
        np.testing.assert_allclose(with_image - without, want, rtol=0, atol=1e-9)
        np.testing.assert_allclose([t.reliance for t in rec.tokens], want, rtol=0, atol=0.5e-4 + 1e-9)  # rounded


def test_another_dtype_does_not_reuse_describes_logp(described64, tiny_qwen2vl_dir):
    ds = Dataset(described64)
    rec = next(iter(ds.records()))
    cap32 = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float32")
    cap64 = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float64")
    assert reliance.described_logprobs(ds, rec, cap32) is None
    assert reliance.described_logprobs(ds, rec, cap64) is not None
