"""The tiny random-weight Qwen3.5's config and processor (built and saved by
precompute.tiny.qwen2vl.build_tiny_qwen2vl(family="qwen3_5"), as the other tiny captioners).

Qwen3.5's real vocabulary (248,320 embedding rows for the 248,077 tokens of its tokenizer,
precompute/tiny/qwen3_5_tokenizer.py) and its layer mix at a tiny size: hidden size 64, four
language layers laid out by the config's own rule (full_attention_interval 4: three gated-delta-net
linear-attention layers, then one full-attention layer), a two-block vision encoder with 16-px
patches merged 2x2 (32 px per grid cell) and a learned position table. The linear layers run
transformers' pure-torch gated delta rule and causal conv1d on CPU (no `fla` or `causal-conv1d`
kernels here) in float32, like the other tiny families.
"""

from __future__ import annotations

HIDDEN = 64


def tiny_qwen3_5_config(tok, vocab_size: int):
    """The tiny Qwen3_5Config, its special-token ids read from `tok`."""
    import transformers

    ids = {name: tok.convert_tokens_to_ids(name) for name in (
        "<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    # head_dim 32 with Qwen3.5's partial rotary factor 0.25: 8 rotary dims, so the M-RoPE sections
    # (temporal, height, width; interleaved) sum to 4
    text_config = dict(vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
                       linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
                       linear_num_key_heads=2, linear_num_value_heads=4,
                       rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25,
                                        "mrope_section": [2, 1, 1], "mrope_interleaved": True},
                       bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    # the vision merger's output width must equal the text hidden size; an 8x8 position table,
    # interpolated to every grid
    vision_config = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=16,
                         spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=HIDDEN,
                         num_position_embeddings=64)
    return transformers.Qwen3_5Config(
        text_config=text_config, vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def qwen3_5_processor(tok):
    """Qwen3.5's processor as transformers maps it (Qwen3VLProcessor, Qwen2-VL's image processor):
    16-px patches merged 2x2 (the vision config's defaults) and mean = std = 0.5 as Qwen3-VL's
    checkpoints set them; Qwen3.5's chat template (precompute/tiny/qwen3_5_tokenizer.py)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    from precompute.tiny.qwen3_5_tokenizer import CHAT_TEMPLATE

    image = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tok, video_processor=Qwen3VLVideoProcessor(),
                            chat_template=CHAT_TEMPLATE)
