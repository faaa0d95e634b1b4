"""A tiny random-weight Qwen2-VL built from a config, saved like a hub model.

Used by the tests and by `tamscope build-smoke`: the real transformers model code runs end to
end on CPU in a fraction of a second, and nothing is downloaded. The tokenizer is Qwen2-VL's
own, rebuilt offline (precompute/tiny/qwen2_tokenizer.py), so the vocabulary has Qwen2-VL-2B's
size (151,936 embedding rows for 151,657 tokens) while the model is tiny (hidden size 64, two
layers): 19.7 M parameters, nearly all of them the embedding and the LM head. Deterministic:
the same seed gives the same bytes on disk.

Random weights with a tied head decode to one repeated token (the residual stream is close to
the current token's embedding, which scores itself highest). To give the tests and the smoke
dataset varied captions (several distinct tokens, some repeated), the head is untied and drawn
at random, the layers' matrices are drawn wider so the image and the context steer decoding,
and the head rows of everything but the words and punctuation of a few painting descriptions
(CORPUS) are zeroed, so decoding does not stop at once and reads as (nonsense) sentences of
painting words.
"""

from __future__ import annotations

import re
from pathlib import Path

from precompute.tiny.qwen2_tokenizer import CHAT_TEMPLATE, qwen2vl_tokenizer

VOCAB_SIZE = 151936  # Qwen2-VL-2B's config.json: the 151,657 tokens padded to a multiple of 128
HIDDEN = 64
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
# what a token the tiny captioner may write decodes to: a word with its space, or punctuation
READABLE = re.compile(r" [^\W\d_]+|[.,;]")


def tiny_qwen2vl_config(tok, family: str = "qwen2_vl"):
    """The tiny config, its special-token ids read from `tok`.

    family: "qwen2_vl" (Qwen2-VL), "qwen2_5_vl" (Qwen2.5-VL: windowed vision attention, an
    RMS-norm merger; the same token layout and merged grid) or "qwen3_vl" (Qwen3-VL: 16-px
    patches, learned position embeddings of the vision encoder, DeepStack, interleaved M-RoPE)."""
    import transformers

    ids = {name: tok.convert_tokens_to_ids(name) for name in (
        "<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    # head_dim 16: the M-RoPE sections (temporal, height, width) must sum to head_dim / 2
    text_config = dict(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"])
    # the vision merger's output width must equal the text hidden size
    if family == "qwen2_vl":
        config_cls = transformers.Qwen2VLConfig
        vision_config = dict(depth=2, embed_dim=64, hidden_size=HIDDEN, num_heads=4, mlp_ratio=2, patch_size=14,
                             spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    elif family == "qwen2_5_vl":
        config_cls = transformers.Qwen2_5_VLConfig
        vision_config = dict(depth=2, hidden_size=64, out_hidden_size=HIDDEN, intermediate_size=128, num_heads=4,
                             patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                             window_size=56, fullatt_block_indexes=[1])
    elif family == "qwen3_vl":
        config_cls = transformers.Qwen3VLConfig
        text_config["head_dim"] = 16
        text_config["rope_parameters"] = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3],
                                          "mrope_interleaved": True}
        # num_position_embeddings: a square (8x8) table, interpolated to every grid
        vision_config = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=16,
                             spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=HIDDEN,
                             num_position_embeddings=64, deepstack_visual_indexes=[1])
    else:
        raise ValueError(f"unknown family {family!r}")
    return config_cls(
        text_config=text_config, vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def readable_tokens(tok, vocab_size: int):
    """(vocab_size,) bool: the ids of CORPUS's tokens that are words (with their space) or punctuation."""
    import torch

    ids = {i for text in CORPUS for i in tok.encode(text)}
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[[i for i in ids if READABLE.fullmatch(tok.decode([i]))]] = True
    return keep


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0, family: str = "qwen2_vl") -> Path:
    """Build, save (model + processor) and return `out_dir`. family: one of tiny_qwen2vl_config's,
    or "qwen3_5" (Qwen3.5: its own tokenizer and vocabulary, gated-delta-net and attention
    layers; precompute/tiny/qwen3_5.py)."""
    import transformers

    out_dir = Path(out_dir)
    if family == "qwen3_5":  # its own tokenizer, vocabulary and config (precompute/tiny/qwen3_5.py)
        from precompute.tiny.qwen3_5 import qwen3_5_processor, tiny_qwen3_5_config
        from precompute.tiny.qwen3_5_tokenizer import VOCAB_SIZE as QWEN3_5_VOCAB
        from precompute.tiny.qwen3_5_tokenizer import qwen3_5_tokenizer

        tok = qwen3_5_tokenizer()
        cfg, make_processor = tiny_qwen3_5_config(tok, QWEN3_5_VOCAB), qwen3_5_processor
    else:
        tok = qwen2vl_tokenizer()
        cfg = tiny_qwen2vl_config(tok, family)
        make_processor = qwen3vl_processor if family == "qwen3_vl" else qwen2vl_processor
    model_cls = {"qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
                 "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
                 "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
                 "qwen3_5": transformers.Qwen3_5ForConditionalGeneration}[family]
    model = tiny_weights(model_cls, cfg, tok, seed)
    proc = make_processor(tok)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir


def qwen2vl_processor(tok):
    """Qwen2-VL's processor (its image processor's defaults) around the tokenizer `tok`."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                            video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)


def qwen3vl_processor(tok):
    """Qwen3-VL's processor as its checkpoints configure it: Qwen2-VL's image processor with
    16-px patches merged 2x2 and mean = std = 0.5, Qwen3-VL's chat template."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    from precompute.tiny.qwen2_tokenizer import QWEN3_VL_CHAT_TEMPLATE

    image = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tok, video_processor=Qwen3VLVideoProcessor(),
                            chat_template=QWEN3_VL_CHAT_TEMPLATE)


def tiny_weights(model_cls, cfg, tok, seed: int):
    """A model of `model_cls` on `cfg` with seeded random weights that make varied greedy captions."""
    import torch

    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for name, weight in model.named_parameters():
            if weight.ndim == 2:  # matrices wider than the default init, so context matters
                weight.normal_(0.0, 1.0 if name.endswith(("embed_tokens.weight", "lm_head.weight")) else 0.2,
                               generator=g)
        head = model.get_output_embeddings().weight  # (V, D), untied from the embedding
        head[~readable_tokens(tok, head.shape[0])] = 0  # only words and punctuation win greedy decoding
    model.generation_config.pad_token_id = cfg.text_config.pad_token_id
    model.generation_config.eos_token_id = cfg.text_config.eos_token_id
    model.generation_config.do_sample = False
    return model
