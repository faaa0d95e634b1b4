"""`make bench-cpu`: CPU time of every precompute stage for one painting, with the real model
architectures (random weights: nothing can be downloaded) in float32 on 2 torch threads.

Not part of `make bench`: it builds Qwen2-VL-2B (2.2 B parameters), Qwen3-4B-Instruct-2507
(4.0 B, 16 GB in float32) and SAM 3 (840 M) in memory, one at a time (each is freed before the
next is built), and runs one synthetic painting through them: about 15 minutes and 17 GB of RAM
on a 2-core machine. Run it as `.venv/bin/python -m bench.cpu` (`--json FILE` keeps
the numbers, `--tiny` checks the code path in seconds with tiny configs, numbers meaningless).

What runs is the stages' own code, on a 1024x768 painting drawn by code (describe's default
sizing makes it a 1036x756 canvas, 27x37 = 999 vision tokens):
- describe: `describe_one` (canvas and thumbnail, greedy caption of exactly 256 new tokens with
  the states and log P taken while generating, `compute_tam`, token offsets, 256 token PNGs,
  tam_raw.safetensors), its parts timed through its `clock`; then, as the yardstick, a bare
  `generate` of the same caption (same canvas, prompt and length): describe / bare generate.
- reliance: the stage's `process` (log P with the image from describe, one teacher-forced pass
  with logits_to_keep on the blurred canvas); then the old reliance, `reliance_of` without
  describe's log P: two teacher-forced passes one after the other (canvas.jpg and the blurred
  canvas), as before: new / old.
- spans: the stage's `process` with the text LLM's `TextLLM.generate` (chat template, prefill,
  greedy decoding); random weights cannot write JSON, so the stage then parses and aligns a
  typical answer (12 phrases), and the model decodes as many tokens as that answer has.
- spanmaps, sam (`Segmenter.segment`: the canvas encoded once, one pass per CVO/ICON phrase),
  metadata (`grade` with the LLM judge, 60 decoded tokens): their stages' `process`.
After describe, the caption's tokens (their ids and maps unchanged) carry the text of a typical
caption (CAPTION), since the stages after it read words and random weights decode to nonsense.
The models are built with `_from_config(real config, dtype=float32)` instead of loaded with
`from_pretrained` (the stages' loaders need weights on disk); building is timed apart and is not
part of the time per painting (loading real weights replaces it). Both models use Qwen's real
tokenizer, rebuilt offline (precompute/tiny/qwen2_tokenizer.py; Qwen3's adds tokens after
Qwen2-VL's, the BPE is the same), so the prompt lengths are the real ones; `--tiny` uses the tiny
configs of the test models (precompute/tiny). Greedy decoding is forced to its full length (min_new_tokens),
since random weights would otherwise stop at any time. Random weights make the work the same
as real weights with one exception: SAM 3 keeps no instance (scores ~0.25 < 0.5), so the
resizing of kept masks (a few milliseconds per instance) is not exercised.

`--families qwen2_5_vl,qwen3_vl,qwen3_5,internvl` (or `all`) then times describe and reliance
again with the smallest released architecture of each other captioner family (SMALLEST,
precompute/families), built, timed and freed one after the other, each with its own tokenizer
(rebuilt offline) and processor (precompute/tiny); one report line each. InternVL's line counts
its thumbnail's image tokens apart from the grid's.

Timings come from the wall clock around each stage's call and forward hooks on the model
modules (vision encoder, language model), so decoding is split into prefill and per-token cost.
Per stage it also prints the peak RSS, the process CPU time over wall time (about 2 when both
cores were ours) and the load average (which counts this benchmark's own two threads).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import re
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from testkit import procmem

THREADS = 2
GIB = 1024**3

# A caption of the kind Qwen2-VL-2B writes for a famous painting (~220 words); split into as many
# pieces as the captioner generated tokens, it stands in for the decoded caption in the later stages.
CAPTION = (
    "This image is a famous painting titled \"The Starry Night\" by Vincent van Gogh, created in 1889. "
    "The painting depicts a small village under a swirling night sky filled with bright stars and a "
    "glowing crescent moon. In the foreground, a tall, dark cypress tree rises like a flame toward the "
    "sky, its twisting shape echoing the movement of the clouds. The village below is quiet, with small "
    "houses and a church with a tall steeple, their windows lit with warm yellow light. Rolling blue "
    "hills stretch across the horizon behind the houses. The sky dominates the composition: large "
    "spirals of wind and light swirl across it, painted with thick, vibrant brushstrokes in shades of "
    "blue, white and yellow. The stars are surrounded by halos of light that seem to pulse and radiate "
    "energy. The contrast between the calm, sleeping village and the turbulent sky creates a sense of "
    "movement and emotion. The artist's bold use of color and expressive, rhythmic brushwork are "
    "characteristic of the Post-Impressionist style. The painting conveys a feeling of wonder and "
    "melancholy, reflecting the artist's intense emotional response to the natural world. Overall, the "
    "work is a powerful and dreamlike vision of the night, and it remains one of the most recognizable "
    "and celebrated paintings in the history of Western art."
)
# A typical span answer: 12 phrases, 6 of them CVO (the SAM 3 prompts), 3 META (the judge's input).
SPAN_ITEMS = [("The Starry Night", "META"), ("Vincent van Gogh", "META"), ("created in 1889", "META"),
              ("a small village", "CVO"), ("a swirling night sky", "CVO"), ("bright stars", "CVO"),
              ("a glowing crescent moon", "CVO"), ("a tall, dark cypress tree", "CVO"), ("a church", "CVO"),
              ("vibrant brushstrokes", "STYLE"), ("a sense of movement and emotion", "AFFECT"),
              ("Post-Impressionist style", "STYLE")]
SPAN_ANSWER = json.dumps([{"text": t, "category": c} for t, c in SPAN_ITEMS], ensure_ascii=False)
JUDGE_ANSWER = ('{"title_claimed": "The Starry Night", "artist_claimed": "Vincent van Gogh", '
                '"title_correct": false, "artist_correct": false}')
JUDGE_TOKENS = 60  # a judge answer, often in a ```json fence: ~40-60 tokens
ANNOTATIONS = {"title": "Village under Stars", "artist": "Test Painter", "year": 1889}


# --- measuring ------------------------------------------------------------------------------

def free_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap pages back, so the next model fits
    except OSError:
        pass


class Calls:
    """Forward hooks on a module: (start, end, sequence length) of every call."""

    def __init__(self, module):
        self.calls: list[list] = []
        self.handles = [module.register_forward_pre_hook(self._pre, with_kwargs=True),
                        module.register_forward_hook(self._post)]

    def _pre(self, module, args, kwargs):
        x = kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None and args:
            x = args[0]
        n = int(x.shape[-2] if x is not None and x.ndim == 3 else x.shape[-1]) if x is not None else 0
        self.calls.append([time.perf_counter(), None, n])

    def _post(self, module, args, output):
        self.calls[-1][1] = time.perf_counter()

    def since(self, t0: float) -> list[list]:
        return [c for c in self.calls if c[0] >= t0]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class Stage:
    """Wall time, CPU time, peak RSS and load average of one stage."""

    def __init__(self, name: str, results: dict):
        self.name, self.results = name, results

    def __enter__(self):
        gc.collect()
        procmem.reset_peak()
        self.t0, self.cpu0 = time.perf_counter(), os.times()
        return self

    def __exit__(self, *exc):
        t1, cpu1 = time.perf_counter(), os.times()
        wall = t1 - self.t0
        cpu = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        self.results[self.name] = {"seconds": wall, "cpu_over_wall": cpu / wall if wall else 0.0,
                                   "peak_rss": procmem.process("VmHWM"), "load": os.getloadavg()[0],
                                   **self.results.get(self.name, {})}
        return False


def timed(log: dict, name: str, fn):
    """fn, with the (start, end) of every call appended to log[name]."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            log.setdefault(name, []).append((t0, time.perf_counter()))
    return wrapper


class Clock:
    """describe's clock (describe_one(..., clock=)): the (start, end) of each part in log[part]."""

    def __init__(self, log: dict):
        self.log = log

    @contextlib.contextmanager
    def __call__(self, part: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.log.setdefault(part, []).append((t0, time.perf_counter()))


def decode_split(calls: list[list], t_start: float, t_end: float) -> dict:
    """generate() between t_start and t_end, whose steps are `calls`: prefill and decoding."""
    first = calls[0]
    steps = len(calls) - 1
    decode = t_end - first[1]
    return {"prefill": first[1] - t_start, "prompt_tokens": first[2], "new_tokens": len(calls),
            "decode": decode, "per_token": decode / steps if steps else 0.0, "generate": t_end - t_start}


# --- models -----------------------------------------------------------------------------------

def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def build(cls, cfg, dtype, results: dict, key: str, need_bytes: float):
    import torch

    available = procmem.system("MemAvailable")
    t0 = time.perf_counter()
    model = cls._from_config(cfg, dtype=dtype).eval()
    torch.set_grad_enabled(False)
    results.setdefault("builds", {})[key] = {"seconds": time.perf_counter() - t0, "params": params(model),
                                             "dtype": str(dtype).replace("torch.", ""),
                                             "mem_available_before": available, "need": need_bytes}
    b = results["builds"][key]
    print(f"built {key}: {b['params'] / 1e9:.3f} B params, {b['dtype']}, {b['seconds']:.0f} s "
          f"(random init; not per painting), {available / GIB:.1f} GiB were available", flush=True)
    return model


# The smallest released checkpoint of each captioner family (--families): its config.json in
# captioner_config (internvl_config, qwen3_5_config)
SMALLEST = {"qwen2_vl": "Qwen/Qwen2-VL-2B-Instruct", "qwen2_5_vl": "Qwen/Qwen2.5-VL-3B-Instruct",
            "qwen3_vl": "Qwen/Qwen3-VL-2B-Instruct", "qwen3_5": "Qwen/Qwen3.5-0.8B",
            "internvl": "OpenGVLab/InternVL3-1B-hf", "llava_onevision": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"}


def captioner_parts(family: str, tiny: bool):
    """(tokenizer, config, processor) of a captioner family's smallest architecture (or its tiny
    test config): the family's own tokenizer, rebuilt offline, and processor (precompute/tiny)."""
    if family == "internvl":
        from precompute.tiny.internvl import (
            TINY_TILE,
            internvl_processor,
            internvl_tokenizer,
            tiny_internvl_config,
        )

        tok = internvl_tokenizer()
        if tiny:
            return tok, tiny_internvl_config(tok, TINY_TILE), internvl_processor(tok, TINY_TILE)
        return tok, captioner_config(tok, False, family), internvl_processor(tok)
    if family == "llava_onevision":
        from precompute.tiny.llava_onevision import (
            TINY_CROP,
            llava_onevision_processor,
            llava_onevision_tokenizer,
            tiny_llava_onevision_config,
        )

        tok = llava_onevision_tokenizer()
        if tiny:
            return tok, tiny_llava_onevision_config(tok, TINY_CROP), llava_onevision_processor(tok, TINY_CROP)
        return tok, llava_onevision_config(tok), llava_onevision_processor(tok)
    if family == "qwen3_5":
        from precompute.tiny.qwen3_5 import qwen3_5_processor, tiny_qwen3_5_config
        from precompute.tiny.qwen3_5_tokenizer import VOCAB_SIZE, qwen3_5_tokenizer

        tok = qwen3_5_tokenizer()
        cfg = tiny_qwen3_5_config(tok, VOCAB_SIZE) if tiny else captioner_config(tok, False, family)
        return tok, cfg, qwen3_5_processor(tok)
    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer
    from precompute.tiny.qwen2vl import qwen2vl_processor, qwen3vl_processor

    tok = qwen2vl_tokenizer()
    proc = qwen3vl_processor(tok) if family == "qwen3_vl" else qwen2vl_processor(tok)
    return tok, captioner_config(tok, tiny, family), proc


def vision_module(model):
    """The vision encoder: Qwen-VL's `visual`, InternVL's `vision_tower`."""
    inner = model.model
    return inner.vision_tower if hasattr(inner, "vision_tower") else inner.visual


def captioner_config(tok, tiny: bool, family: str = "qwen2_vl"):
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    if family == "internvl" and not tiny:
        return internvl_config(tok)
    if family == "qwen3_5" and not tiny:
        return qwen3_5_config(tok)
    if tiny:
        from precompute.tiny.qwen2vl import tiny_qwen2vl_config

        return tiny_qwen2vl_config(tok, family)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                       "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    special = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                   vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    text_ids = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    if family == "qwen2_5_vl":
        return Qwen2_5_VLConfig(  # Qwen/Qwen2.5-VL-3B-Instruct config.json
            text_config=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                             num_attention_heads=16, num_key_value_heads=2, hidden_act="silu",
                             max_position_embeddings=128000, rms_norm_eps=1e-6,
                             rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                              "mrope_section": [16, 24, 24]}, **text_ids),
            vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, hidden_act="silu",
                               out_hidden_size=2048, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                               window_size=112, fullatt_block_indexes=[7, 15, 23, 31], in_channels=3),
            tie_word_embeddings=True, **special)
    if family == "qwen3_vl":
        return Qwen3VLConfig(  # Qwen/Qwen3-VL-2B-Instruct config.json
            text_config=dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                             num_attention_heads=16, num_key_value_heads=8, head_dim=128, hidden_act="silu",
                             max_position_embeddings=262144, rms_norm_eps=1e-6,
                             rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                              "mrope_section": [24, 20, 20], "mrope_interleaved": True},
                             **text_ids),
            vision_config=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                               hidden_act="gelu_pytorch_tanh", out_hidden_size=2048, patch_size=16,
                               spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                               deepstack_visual_indexes=[5, 11, 17], in_channels=3),
            tie_word_embeddings=True, **special)
    return Qwen2VLConfig(  # Qwen/Qwen2-VL-2B-Instruct config.json
        text_config=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, hidden_act="silu",
                         max_position_embeddings=32768, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4,
                           hidden_act="quick_gelu", patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)


def internvl_config(tok):
    """OpenGVLab/InternVL3-1B-hf (0.94 B parameters): InternViT-300M (24 layers of 1024, 16 heads,
    MLP 4096, qkv bias, LayerNorm, layer scale 0.1, 448-px tiles of 14-px patches), pixel shuffle 0.5
    and a 2-layer GELU projector to a Qwen2.5-0.5B language model (24 layers of 896, 14 heads, 2 KV
    heads, MLP 4864, an untied head over 151,674 rows). Not read from the hub's config.json (not
    on this machine): the vision side is transformers' InternVLVisionConfig defaults with the
    hf checkpoint's attention bias, the text side the module sizes printed from InternVL3-1B
    (embed_tokens 151674 x 896, lm_head apart); the parameter count matches the published 0.94 B
    (a tied head would give 0.80 B)."""
    from transformers import InternVLConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<IMG_CONTEXT>")}
    return InternVLConfig(
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           attention_bias=True, use_qk_norm=False, hidden_act="gelu", norm_type="layer_norm",
                           layer_norm_eps=1e-6, image_size=[448, 448], patch_size=[14, 14],
                           layer_scale_init_value=0.1, use_absolute_position_embeddings=True, use_mean_pooling=True),
        text_config=dict(model_type="qwen2", vocab_size=151674, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, hidden_act="silu",
                         max_position_embeddings=32768, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=False,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=256, downsample_ratio=0.5,
        projector_hidden_act="gelu", vision_feature_layer=-1, vision_feature_select_strategy="default",
        tie_word_embeddings=False)


def llava_onevision_config(tok):
    """llava-hf/llava-onevision-qwen2-0.5b-ov-hf (0.89 B parameters): SigLIP-so400m cut to 26
    layers (1152 wide, 16 heads, MLP 4304, 384-px crops of 14-px patches: 27 x 27 tokens; the
    sizes transformers' LlavaOnevisionConfig gives its vision tower by default), a 2-layer GELU
    projector, and Qwen2-0.5B-Instruct (24 layers of 896, 14 heads, 2 KV heads, MLP 4864, the head
    tied to the embedding) with the embedding padded to 152,000 rows by the conversion script
    (precompute/tiny/llava_onevision.py). Not read from the hub's config.json (not on this
    machine); the total matches the checkpoint's published 0.9 B."""
    from transformers import LlavaOnevisionConfig

    from precompute.tiny.llava_onevision import VOCAB_SIZE, pinpoints

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<image>", "<video>")}
    return LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
                           num_hidden_layers=26, num_attention_heads=16, image_size=384, patch_size=14,
                           hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, vision_use_head=False),
        text_config=dict(model_type="qwen2", vocab_size=VOCAB_SIZE, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, hidden_act="silu",
                         max_position_embeddings=32768, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=True,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=pinpoints(), vision_aspect_ratio="anyres_max_9",
        projector_hidden_act="gelu", tie_word_embeddings=True)


def qwen3_5_config(tok):
    """Qwen/Qwen3.5-0.8B (0.85 B parameters as transformers builds it, without the multi-token
    prediction layer): 24 language layers of 1024 in Qwen3.5's 3:1 mix (gated delta net with 16
    key and 16 value heads of 128, then gated full attention with 8 heads of 256 and 2 KV heads,
    partial rotary 0.25, interleaved M-RoPE [11, 11, 10]), MLP 3584, a head tied to the
    248,320-row embedding; a 12-block vision encoder of 768 (12 heads, MLP 3072, 16-px patches
    merged 2x2 into 1024). The hub's config.json is not on this machine: these values come from
    third-party mirrors of it (a config parser's test fixture and a vision-contract table) and
    agree with the model card's figures (hidden 1024, 24 layers, 8/2 heads of 256, FFN 3584)."""
    from transformers import Qwen3_5Config

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                       "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    return Qwen3_5Config(
        text_config=dict(vocab_size=248320, hidden_size=1024, intermediate_size=3584, num_hidden_layers=24,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=256, hidden_act="silu",
                         linear_num_key_heads=16, linear_num_value_heads=16, linear_key_head_dim=128,
                         linear_value_head_dim=128, linear_conv_kernel_dim=4, rms_norm_eps=1e-6,
                         max_position_embeddings=262144,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
                                          "mrope_section": [11, 11, 10], "mrope_interleaved": True},
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=12, hidden_size=768, num_heads=12, intermediate_size=3072,
                           hidden_act="gelu_pytorch_tanh", patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
                           out_hidden_size=1024, num_position_embeddings=2304, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)


def text_llm_config(tok, tiny: bool):
    from transformers import Qwen3Config

    if tiny:
        from precompute.tiny.textlm import tiny_text_lm_config

        return tiny_text_lm_config(tok)
    return Qwen3Config(  # Qwen/Qwen3-4B-Instruct-2507 config.json
        vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
        max_position_embeddings=262144, rms_norm_eps=1e-6, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 5e6}, tie_word_embeddings=True,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))


def segmenter_config(tiny: bool):
    from transformers import Sam3Config

    if not tiny:
        return Sam3Config()  # facebook/sam3: the defaults are the released model
    from precompute.tiny import sam3 as tiny_sam3

    with tempfile.TemporaryDirectory() as d:  # the smoke builder's config, read back
        from transformers import AutoConfig

        tiny_sam3.build_tiny_sam3(Path(d))
        return AutoConfig.from_pretrained(d)


def force_length(model, tok, n: int) -> None:
    """Greedy decoding of exactly n new tokens: the end tokens are masked until then."""
    config = model.generation_config
    config.eos_token_id = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    config.pad_token_id = tok.convert_tokens_to_ids("<|endoftext|>")
    config.do_sample = False
    config.min_new_tokens = n


# --- the painting -----------------------------------------------------------------------------

def caption_pieces(n: int) -> list[str]:
    """CAPTION in n pieces (words with their leading space and punctuation, long words split like
    sub-word tokens, the caption cut short if it has more than n pieces)."""
    pieces = re.findall(r" ?[A-Za-z0-9']+|[^A-Za-z0-9' ]| ", CAPTION)
    while len(pieces) < n:
        i = max(range(len(pieces)), key=lambda k: len(pieces[k]))
        if len(pieces[i]) < 2:
            pieces.append(".")
            continue
        half = len(pieces[i]) // 2
        pieces[i:i + 1] = [pieces[i][:half], pieces[i][half:]]
    return pieces[:n]


def with_caption(record):
    """The record's tokens (ids, maps) carrying CAPTION's text: the caption a real model writes,
    for the stages that read words (random weights decode to nonsense)."""
    from contract.schema import Token

    pieces = caption_pieces(len(record.tokens))
    tokens, start = [], 0
    for token, text in zip(record.tokens, pieces, strict=True):
        tokens.append(Token(index=token.index, id=token.id, text=text, start=start, end=start + len(text),
                            map=token.map, reliance=token.reliance, visual=token.visual))
        start += len(text)
    return record.model_copy(update={"caption": "".join(pieces), "tokens": tokens})


class Answering:
    """A text LLM that does the real work (chat template, prefill, greedy decoding of a forced
    length) and then hands the stage a typical answer, since random weights write no JSON."""

    def __init__(self, llm, answer: str):
        self.llm, self.answer = llm, answer

    def generate(self, messages: list[dict]) -> str:
        self.llm.generate(messages)
        return self.answer


# --- the stages -------------------------------------------------------------------------------

def run_captioner(args, work: Path, results: dict, family: str = "qwen2_vl"):
    import numpy as np
    import torch
    from PIL import Image

    from contract.commit import commit_painting
    from contract.inputs import PaintingInput
    from contract.schema import Annotations
    from contract.store import Dataset
    from precompute.captioner_inputs import MAX_PIXELS, MIN_PIXELS, prompt_inputs
    from precompute.families import FAMILIES
    from precompute.models import Captioner, Lazy
    from precompute.paintings import load_painting
    from precompute.smoke import draw_painting
    from precompute.stages import describe, reliance

    tok, cfg, proc = captioner_parts(family, args.tiny)
    model = build(FAMILIES[family].model_class(), cfg, torch.float32, results, "captioner", 0)
    force_length(model, tok, args.new_tokens)
    model_id = f"{SMALLEST[family]} (random weights)"
    captioner = Captioner(model, proc, model_id, "random", torch.device("cpu"), torch.float32)
    lazy = Lazy.holding(captioner, "describe")  # the stages' lazy loader, already loaded

    image_path = work / "village-under-stars.png"
    draw_painting("village-under-stars", (args.width, args.height)).save(image_path)
    dataset = Dataset(work / "dataset")
    painting = PaintingInput("village-under-stars", image_path, Annotations(**ANNOTATIONS))
    stage_args = Namespace(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, tam_variant=describe.TAM_VARIANTS[0],
                           prompt=describe.DEFAULT_PROMPT, max_new_tokens=args.new_tokens)

    base, vision, lm = Calls(model.model), Calls(vision_module(model)), Calls(model.model.language_model)
    log: dict = {}
    with Stage("describe", results):
        out = describe.describe_one(painting, stage_args, lazy, clock=Clock(log))
        commit_painting(dataset, out.record, out.files)  # what the stage writes, timed with it
        record = out.record
    (g0, g1), = log["generate"]
    span = lambda c: c[1] - c[0]  # noqa: E731
    r = results["describe"]
    r.update(decode_split([c for c in base.calls if g0 <= c[0] <= g1], g0, g1))
    r.update({"vision": span(vision.calls[0]), "lm_prefill": span(lm.calls[0]), "vision_passes": len(vision.calls),
              "image_tokens": record.grid.h * record.grid.w, "grid": [record.grid.h, record.grid.w],
              "tam": span(log["tam"][0]), "tokens": span(log["tokens"][0]), "n_tokens": len(record.tokens)})
    r["files"] = r["seconds"] - r["generate"] - r["tam"] - r["tokens"]

    # the yardstick: a bare `generate` of the same caption (same canvas, prompt, length), nothing else
    canvas = captioner.family.model_image(load_painting(image_path).image, MIN_PIXELS, MAX_PIXELS, proc)
    inputs = prompt_inputs(captioner, canvas, stage_args.prompt)
    t0 = time.perf_counter()
    with torch.inference_mode():
        bare = model.generate(**inputs, max_new_tokens=args.new_tokens, do_sample=False)
    # image tokens in the prompt: the grid's cells, and a tiled family's thumbnail besides
    r["prompt_image_tokens"] = int((inputs["input_ids"] == model.config.image_token_id).sum())
    results["bare_generate"] = {"seconds": time.perf_counter() - t0,
                                "same_caption": bare[0, inputs["input_ids"].shape[1]:].tolist()
                                == [t.id for t in record.tokens]}

    record = with_caption(record)
    relargs = Namespace(blur=reliance.DEFAULT_BLUR, threshold=reliance.DEFAULT_THRESHOLD)
    apply = reliance.process(dataset, lazy, model_id, relargs)
    with Stage("reliance", results):
        t0 = time.perf_counter()
        scored = apply(record.model_copy(deep=True))
    passes, vis = base.since(t0), vision.since(t0)
    results["reliance"].update({"passes": [span(c) for c in passes], "pass_tokens": passes[0][2],
                                "vision": [span(c) for c in vis],
                                "logp_image_from": scored.provenance["reliance"]["logp_image_from"]})
    # the old reliance: two teacher-forced passes, one after the other (the canvas, the blurred
    # canvas), as before describe kept log P
    with Stage("reliance_two_pass", results):
        t0 = time.perf_counter()
        with Image.open(dataset.painting_dir(record.id) / record.canvas.path) as im:
            saved = im.convert("RGB")
        with_image, without, source = reliance.reliance_of(captioner, saved, record.prompt,
                                                           [t.id for t in record.tokens], relargs.blur)
    results["reliance_two_pass"].update({"passes": [span(c) for c in base.since(t0)], "logp_image_from": source,
                                         "max_difference": float(np.abs(np.array([t.reliance for t in scored.tokens])
                                                                        - (with_image - without)).max())})
    record = scored
    for clock in (base, vision, lm):
        clock.remove()
    del model, captioner, lazy, apply, proc
    free_memory()
    return dataset, record


def run_text_llm(args, dataset, record, results: dict):
    import torch
    from transformers import Qwen3ForCausalLM

    from precompute.stages import metadata, spans
    from precompute.textllm import DEFAULT_MODEL, TextLLM
    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer

    tok = qwen2vl_tokenizer()
    answer_tokens = len(tok(SPAN_ANSWER)["input_ids"])
    n_span = args.span_tokens or answer_tokens
    cfg = text_llm_config(tok, args.tiny)
    need = 4 * (cfg.vocab_size * cfg.hidden_size + cfg.num_hidden_layers * (
        cfg.hidden_size * cfg.head_dim * (cfg.num_attention_heads * 2 + cfg.num_key_value_heads * 2)
        + 3 * cfg.hidden_size * cfg.intermediate_size))
    dtype = getattr(torch, args.text_llm_dtype)
    if dtype == torch.float32 and procmem.system("MemAvailable") < need + 1.5 * GIB:
        print(f"text LLM: {need / GIB:.1f} GiB in float32 does not fit in the "
              f"{procmem.system('MemAvailable') / GIB:.1f} GiB available: measuring bfloat16 instead", flush=True)
        dtype = torch.bfloat16
    model = build(Qwen3ForCausalLM, cfg, dtype, results, "text_llm", need)
    llm = TextLLM(DEFAULT_MODEL, "cpu", "float32", None, n_span, stage="spans")
    llm.use_loaded(tok, model)
    base = Calls(model.model)
    log: dict = {}
    llm.generate = timed(log, "generate", llm.generate)

    force_length(model, tok, n_span)
    apply = spans.process(Answering(llm, SPAN_ANSWER).generate, retries=2, totals={})
    with Stage("spans", results):
        t0 = time.perf_counter()
        record = apply(record)
    results["spans"].update(decode_split(base.since(t0), *log["generate"][-1]))
    results["spans"].update({"answer_tokens": answer_tokens, "phrases": len(record.spans)})

    llm.max_new_tokens = JUDGE_TOKENS
    force_length(model, tok, JUDGE_TOKENS)
    apply = metadata.process(Answering(llm, JUDGE_ANSWER))
    with Stage("metadata", results):
        t0 = time.perf_counter()
        record = apply(record)
    results["metadata"].update(decode_split(base.since(t0), *log["generate"][-1]))
    results["text_llm_dtype"] = str(dtype).replace("torch.", "")
    base.remove()
    del model, llm, apply
    free_memory()
    return record


def run_cheap(args, dataset, record, results: dict):
    from contract.commit import commit_painting
    from precompute.stages import metadata, spanmaps, spans

    with Stage("spanmaps", results):
        out = spanmaps.process(dataset, "mean")(record)
        commit_painting(dataset, out.record, out.files)
        record = out.record
    with Stage("spans_lexicon", results):
        spans.process(None, retries=2, totals={})(record.model_copy(deep=True))
    with Stage("metadata_lexicon", results):
        metadata.process(None)(record.model_copy(deep=True))
    return record


def run_segmenter(args, dataset, record, results: dict):
    import torch
    from transformers import Sam3ImageProcessor, Sam3Model, Sam3Processor

    from contract.commit import commit_painting
    from precompute.stages import sam
    from precompute.tiny.sam3 import build_clip_tokenizer

    tok = build_clip_tokenizer()
    cfg = segmenter_config(args.tiny)
    model = build(Sam3Model, cfg, torch.float32, results, "segmenter", 0)
    size = cfg.vision_config.backbone_config.image_size
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": size, "width": size}),
                              tokenizer=tok)
    segmenter = sam.Segmenter(Namespace(model=sam.DEFAULT_MODEL, revision=None, device="cpu", dtype="auto",
                                        offline=False, threshold=0.5, mask_threshold=0.5))
    segmenter.use_loaded(processor, model)
    vision, passes = Calls(model.vision_encoder), Calls(model)
    prompts = [s.text for s in record.spans if s.category in ("CVO", "ICON")]
    with Stage("sam", results):
        out = sam.process(dataset, segmenter)(record)
        commit_painting(dataset, out.record, out.files)
        record = out.record
    r = results["sam"]
    r.update({"vision": vision.calls[0][1] - vision.calls[0][0], "prompts": len(prompts),
              "per_prompt": [c[1] - c[0] for c in passes.calls], "image_size": size,
              "instances": sum(s.sam.instances for s in record.spans if s.sam is not None)})
    vision.remove()
    passes.remove()
    del model, segmenter, processor
    free_memory()
    return record


# --- report -----------------------------------------------------------------------------------

def fmt(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


OFF_GRID = {"internvl": "the thumbnail", "llava_onevision": "the base image and the row ends"}


def thumbnail(d: dict, family: str = "internvl") -> str:
    """', + 256 of the thumbnail' when the prompt holds more image tokens than the grid has cells."""
    extra = d.get("prompt_image_tokens", d["image_tokens"]) - d["image_tokens"]
    return f", + {extra} of {OFF_GRID.get(family, 'no grid')}" if extra else ""


def report(results: dict) -> None:
    r = results
    if "describe" not in r:  # --families-only
        report_families(r)
        return
    d, rel, sp, md, sm, sa = (r[k] for k in ("describe", "reliance", "spans", "metadata", "spanmaps", "sam"))
    tail = lambda x: f"   [peak RSS {x['peak_rss'] / GIB:.1f} GiB, cpu/wall {x['cpu_over_wall']:.2f}, load {x['load']:.1f}]"  # noqa: E731
    print()
    print("stage        seconds  what")
    print(f"describe   {d['seconds']:8.1f}  vision {fmt(d['vision'])} ({d['vision_passes']} pass) + LM prefill "
          f"{fmt(d['lm_prefill'])} ({d['prompt_tokens']} tokens, {d['image_tokens']} of them image), "
          f"{d['new_tokens'] - 1} decode steps x {d['per_token']:.2f} s = {fmt(d['decode'])}; TAM {fmt(d['tam'])}; "
          f"offsets, PNGs, files {fmt(d['files'] + d['tokens'])}" + tail(d))
    print(f"reliance   {rel['seconds']:8.1f}  log P with the image from describe, one teacher-forced pass with the "
          f"blurred canvas {' + '.join(fmt(p) for p in rel['passes'])} ({rel['pass_tokens']} tokens, vision "
          f"{' + '.join(fmt(v) for v in rel['vision'])}); blur, processor, log-softmax "
          f"{fmt(rel['seconds'] - sum(rel['passes']))}" + tail(rel))
    print(f"spans      {sp['seconds']:8.1f}  {r['text_llm_dtype']}: prefill {fmt(sp['prefill'])} "
          f"({sp['prompt_tokens']} prompt tokens) + {sp['new_tokens']} answer tokens "
          f"({len(SPAN_ITEMS)} phrases) x {sp['per_token']:.2f} s = {fmt(sp['decode'])}" + tail(sp))
    print(f"spanmaps   {sm['seconds']:8.1f}  {sp['phrases']} span maps and metrics" + tail(sm))
    per = sa["per_prompt"]
    print(f"sam        {sa['seconds']:8.1f}  vision {fmt(sa['vision'])} ({sa['image_size']} px), {sa['prompts']} "
          f"prompts x {sum(per) / max(1, len(per)):.1f} s" + tail(sa))
    print(f"metadata   {md['seconds']:8.1f}  {r['text_llm_dtype']}: prefill {fmt(md['prefill'])} "
          f"({md['prompt_tokens']} prompt tokens) + {md['new_tokens']} answer tokens x {md['per_token']:.2f} s "
          f"= {fmt(md['decode'])}" + tail(md))
    total = sum(x["seconds"] for x in (d, rel, sp, sm, sa, md))
    lexicon = sum(x["seconds"] for x in (d, rel, sm, sa, r["spans_lexicon"], r["metadata_lexicon"]))
    peak = max(x["peak_rss"] for x in (d, rel, sp, sm, sa, md))
    r["total"], r["total_lexicon"], r["peak_rss"] = total, lexicon, peak
    print(f"total per painting: {total:.0f} s ({total / 60:.1f} min); with --text-llm lexicon: {lexicon:.0f} s "
          f"({lexicon / 60:.1f} min)")
    bare, old = r["bare_generate"], r["reliance_two_pass"]
    r["targets"] = {"describe_over_bare_generate": d["seconds"] / bare["seconds"],
                    "reliance_over_two_pass": rel["seconds"] / old["seconds"], "lexicon_per_painting": lexicon}
    t = r["targets"]
    print(f"describe / a bare generate of the same caption ({fmt(bare['seconds'])}, same ids: "
          f"{bare['same_caption']}): {t['describe_over_bare_generate']:.3f}x (target <= 1.05)")
    print(f"reliance / the old two-pass reliance ({fmt(old['seconds'])}: passes "
          f"{' + '.join(fmt(p) for p in old['passes'])}; reliance differs by at most {old['max_difference']:.4f} nats): "
          f"{t['reliance_over_two_pass']:.3f}x (target <= 0.55)")
    print(f"lexicon pipeline per painting: {lexicon:.0f} s (target <= 370 s)")
    report_families(r)
    builds = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in r["builds"].items())
    print(f"peak RSS {peak / GIB:.1f} GiB; torch threads {r['threads']}; load average {r['load_start']} at start, "
          f"{r['load_end']} at end; model builds (random init, not counted): {builds}")


def report_families(r: dict) -> None:
    for family, f in r.get("families", {}).items():  # the same stages, other captioner families
        fd, fr = f["describe"], f["reliance"]
        print(f"{family:<10} {f['checkpoint']}: {f['builds']['captioner']['params'] / 1e9:.2f} B params, grid "
              f"{fd['grid'][0]}x{fd['grid'][1]} ({fd['image_tokens']} vision tokens"
              f"{thumbnail(fd, family)}): describe {fd['seconds']:8.1f} "
              f"(vision {fmt(fd['vision'])}, prefill {fmt(fd['lm_prefill'])}, {fd['n_tokens']} tokens x "
              f"{fd['per_token']:.2f} s, tam {fmt(fd['tam'])}), reliance {fr['seconds']:8.1f}")


def default_pipeline(args, work: Path, results: dict) -> None:
    """Every stage with the default models (Qwen2-VL-2B, Qwen3-4B, SAM 3), one after the other."""
    dataset, record = run_captioner(args, work, results)
    d = results["describe"]
    print(f"describe {d['seconds']:.0f} s, reliance {results['reliance']['seconds']:.0f} s "
          f"(painting {args.width}x{args.height}, grid {d['grid'][0]}x{d['grid'][1]})", flush=True)
    record = run_text_llm(args, dataset, record, results)
    print(f"spans {results['spans']['seconds']:.0f} s, metadata {results['metadata']['seconds']:.0f} s",
          flush=True)
    record = run_cheap(args, dataset, record, results)
    run_segmenter(args, dataset, record, results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=1024, help="width of the synthetic painting")
    parser.add_argument("--height", type=int, default=768, help="height of the synthetic painting")
    parser.add_argument("--new-tokens", type=int, default=256, help="caption length (describe's --max-new-tokens)")
    parser.add_argument("--span-tokens", type=int, default=0,
                        help="tokens the span classifier decodes (default: the length of the typical answer)")
    parser.add_argument("--text-llm-dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--json", type=Path, default=None, help="write every number to this file")
    parser.add_argument("--tiny", action="store_true", help="tiny configs: checks the code path in seconds")
    parser.add_argument("--families", default="",
                        help="also time describe and reliance with the smallest real architecture of these captioner "
                             f"families (comma-separated, or all: {', '.join(f for f in SMALLEST if f != 'qwen2_vl')})")
    parser.add_argument("--families-only", action="store_true",
                        help="time only the --families' describe and reliance, not the default pipeline")
    args = parser.parse_args(argv)
    extra = [f for f in SMALLEST if f != "qwen2_vl"] if args.families == "all" else [
        f for f in args.families.split(",") if f]
    unknown = [f for f in extra if f not in SMALLEST]
    if unknown:
        parser.error(f"--families: unknown {', '.join(unknown)} (known: {', '.join(SMALLEST)})")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "threads": torch.get_num_threads(),
                     "cpus": os.cpu_count(), "ram": procmem.system("MemTotal"), "torch": torch.__version__,
                     "transformers": transformers.__version__, "load_start": load, "tiny": args.tiny}
    print(f"tamscope CPU benchmark{' (TINY configs: numbers meaningless)' if args.tiny else ''}: real "
          f"architectures, random weights, float32, {results['threads']} torch threads, {results['cpus']} CPUs, "
          f"{results['ram'] / GIB:.1f} GiB RAM ({procmem.system('MemAvailable') / GIB:.1f} available), torch "
          f"{torch.__version__}, transformers {transformers.__version__}; load average {load}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tamscope-bench-cpu-") as tmp:
        if not args.families_only:
            default_pipeline(args, Path(tmp), results)
        for family in extra:  # each built, timed and freed in turn, as the default captioner
            sub = results.setdefault("families", {})[family] = {"checkpoint": SMALLEST[family]}
            (Path(tmp) / family).mkdir()
            run_captioner(args, Path(tmp) / family, sub, family)
            print(f"{family}: describe {sub['describe']['seconds']:.0f} s, reliance {sub['reliance']['seconds']:.0f} s",
                  flush=True)
    results["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
