"""bench/flops.py's counts (the GPU table of docs/precompute.md, on paper) equal what
torch.utils.flop_counter.FlopCounterMode counts when the models run, on the tiny models (the
same formulas hold for the real configs). The math attention backend decomposes attention into
matrix products the counter sees."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.flops import Decoder, Vision
from precompute.captioner_inputs import prompt_inputs, teacher_forced_inputs
from precompute.models import load_captioner

torch.set_num_threads(1)


def counted(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn()
    return counter.get_total_flops()


def test_captioner_pass_and_decoding_step(tiny_qwen2vl_dir):
    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu", dtype="float32")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (336, 448, 3), dtype=np.uint8))
    inputs = prompt_inputs(cap, image, "Describe the content and style of this image.")
    generated = list(range(1000, 1020))
    forced = teacher_forced_inputs(inputs, generated)
    vision, lm = Vision.of(cap.model.config), Decoder.of(cap.model.config.text_config)
    patches, length = inputs["pixel_values"].shape[0], forced["input_ids"].shape[1]
    # a teacher-forced pass (reliance): vision encoder, the whole sequence, 20 LM-head rows
    assert counted(lambda: cap.model(**forced, logits_to_keep=len(generated))) == \
        vision.flops(patches) + lm.forward_flops(length, kept=len(generated))
    # one decoding step after the prompt, with the KV cache
    ids = torch.tensor([[1000]])
    with torch.inference_mode():
        cache = cap.model.model.language_model(input_ids=forced["input_ids"][:, :30], use_cache=True).past_key_values
    step = counted(lambda: cap.model.model.language_model(input_ids=ids, past_key_values=cache, use_cache=True))
    head = 2 * lm.hidden * lm.vocab  # the step above stops before the LM head
    assert step == lm.forward_flops(1, past=30) - head


def test_text_llm_prefill(tiny_text_lm_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_text_lm_dir), dtype=torch.float32).eval()
    ids = torch.arange(100, 160)[None]
    assert counted(lambda: model(input_ids=ids, logits_to_keep=1)) == Decoder.of(model.config).forward_flops(60)


def test_text_llm_decoding_step(tiny_text_lm_dir):
    """One decoding step of the span classifier / judge after 40 cached tokens (the table's
    "steps x GFLOP" of spans and metadata), the LM head on that one position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_text_lm_dir), dtype=torch.float32).eval()
    with torch.inference_mode():
        cache = model(input_ids=torch.arange(100, 140)[None], use_cache=True).past_key_values
    step = counted(lambda: model(input_ids=torch.tensor([[7]]), past_key_values=cache, use_cache=True))
    assert step == Decoder.of(model.config).forward_flops(1, past=40)
