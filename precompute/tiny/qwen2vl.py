"""A tiny random-weight Qwen2-VL (0.6 M parameters) built from a config, saved like a hub model.

Used by the tests and by `tamscope build-smoke`: the real transformers model code runs end to
end on CPU in a fraction of a second, and nothing is downloaded. The tokenizer is a byte-level
BPE trained in-process on a few painting descriptions, with the Qwen special tokens as its
first ids, and the official Qwen2-VL chat template. Deterministic: the same seed gives the
same bytes on disk.

Random weights with a tied head decode to one repeated token (the residual stream is close to
the current token's embedding, which scores itself highest). To give the tests and the smoke
dataset varied captions (several distinct tokens, some repeated), the head is untied and drawn
at random, the layers' matrices are drawn wider so the image and the context steer decoding,
and the head rows of everything but whole words and punctuation are zeroed, so decoding
does not stop at once and reads as (nonsense) sentences of painting words.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
            "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# The official Qwen2-VL chat template.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "Describe the content and style of this image.",
    "This image is a famous painting titled \"The Starry Night\" by Vincent van Gogh.",
    "The painting depicts a small village under a swirling night sky filled with bright stars.",
    "A harbour at dusk with boats, a red sun and calm water, painted with loose brushstrokes.",
    "The vibrant colors and bold, dynamic brushstrokes create a sense of motion and emotion.",
    "A portrait of a woman in a blue dress against a dark background, in the style of Expressionism.",
    "A still life with a yellow lemon, a green apple and a wooden table.",
    "The Virgin Mary holds the child; angels and saints surround them in a golden light.",
    "Impressionism, Post-Impressionism, Fauvism, Baroque, Renaissance, landscape, cityscape.",
    "Café, naïve, Åland, élan: accents and umlauts ü ö ä.",
]


def build_tokenizer(extra_texts: tuple[str, ...] = (), vocab_size: int = 700):
    """A byte-level BPE trained in-process on CORPUS (+ extra_texts), Qwen specials first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS + list(extra_texts), trainer)
    model = json.loads(bpe.to_str())["model"]
    tok = Qwen2TokenizerFast(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], unk_token=None,
                             bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _word_tokens(tok):
    """(V,) bool: tokens that decode to a space and a word, or punctuation (readable captions)."""
    import re

    import torch

    keep = torch.zeros(len(tok), dtype=torch.bool)
    for i in range(len(SPECIALS), len(tok)):
        keep[i] = bool(re.fullmatch(r" [A-Za-zéèü]{2,}|[.,;]", tok.decode([i])))
    return keep


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0, family: str = "qwen2_vl") -> Path:
    """Build, save (model + processor) and return `out_dir`.

    family: "qwen2_vl" (Qwen2-VL) or "qwen2_5_vl" (Qwen2.5-VL: windowed vision attention, an
    RMS-norm merger; the same token layout and merged grid)."""
    import torch
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    out_dir = Path(out_dir)
    tok = build_tokenizer()
    ids = {name: tok.convert_tokens_to_ids(name) for name in SPECIALS}
    text_config = dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"])
    if family == "qwen2_vl":
        config_cls, model_cls = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
        vision_config = dict(depth=2, embed_dim=64, hidden_size=128, num_heads=4, mlp_ratio=2, patch_size=14,
                             spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    elif family == "qwen2_5_vl":
        config_cls, model_cls = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
        vision_config = dict(depth=2, hidden_size=64, out_hidden_size=128, intermediate_size=128, num_heads=4,
                             patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                             window_size=56, fullatt_block_indexes=[1])
    else:
        raise ValueError(f"unknown family {family!r}")
    cfg = config_cls(
        text_config=text_config, vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for name, weight in model.named_parameters():
            if weight.ndim == 2:  # matrices wider than the default init, so context matters
                weight.normal_(0.0, 1.0 if name.endswith(("embed_tokens.weight", "lm_head.weight")) else 0.1,
                               generator=g)
        head = model.get_output_embeddings().weight  # (V, 128), untied from the embedding
        head[~_word_tokens(tok)] = 0  # only whole words and punctuation win greedy decoding
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.do_sample = False
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                            video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir
