"""A tiny random-weight SAM 3 (text prompt -> masks) with an in-process CLIP tokenizer, saved
like a hub model (about 1 MB). Random weights score every query about 0.25, so tests use low
thresholds to see masks. Deterministic."""

from __future__ import annotations

from pathlib import Path

WORDS = ["a", "the", "small", "village", "boat", "sky", "stars", "woman", "dress", "table", "sun", "church", "trees"]


def build_clip_tokenizer():
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = []
    for word in WORDS:  # merge whole words so prompts tokenize to one piece per word
        piece = word[0]
        for i, ch in enumerate(word[1:], 1):
            nxt = ch + ("</w>" if i == len(word) - 1 else "")
            if (piece, nxt) not in merges:
                merges.append((piece, nxt))
            piece = piece + nxt
            vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges)


def build_tiny_sam3(out_dir: Path, seed: int = 0, image_size: int = 224, hidden: int = 32) -> Path:
    import torch
    from transformers import (
        Sam3Config,
        Sam3ImageProcessor,
        Sam3Model,
        Sam3Processor,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    tok = build_clip_tokenizer()
    g, d = image_size // 14, hidden
    cfg = Sam3Config(
        vision_config=Sam3VisionConfig(
            backbone_config=Sam3ViTConfig(hidden_size=d, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=2 * d, image_size=image_size,
                                          pretrain_image_size=image_size, patch_size=14, window_size=g // 2,
                                          global_attn_indexes=[1]),
            fpn_hidden_size=d, scale_factors=[4.0, 2.0, 1.0, 0.5],
            backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]]),
        text_config=dict(vocab_size=len(tok), hidden_size=d, intermediate_size=2 * d, projection_dim=d,
                         num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=32,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        geometry_encoder_config=dict(hidden_size=d, num_layers=1, num_attention_heads=4, intermediate_size=2 * d),
        detr_encoder_config=dict(hidden_size=d, num_layers=1, num_attention_heads=4, intermediate_size=2 * d),
        detr_decoder_config=dict(hidden_size=d, num_layers=1, num_queries=5, num_attention_heads=4,
                                 intermediate_size=2 * d),
        mask_decoder_config=dict(hidden_size=d, num_upsampling_stages=3, num_attention_heads=4))
    torch.manual_seed(seed)
    model = Sam3Model(cfg).eval()
    proc = Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": image_size, "width": image_size},
                                                             mask_size={"height": image_size // 4,
                                                                        "width": image_size // 4}),
                         tokenizer=tok)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return Path(out_dir)
