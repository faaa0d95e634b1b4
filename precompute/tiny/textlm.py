"""A tiny random-weight Qwen3 causal LM with a ChatML tokenizer (0.1 M parameters), saved
like a hub model. For tests of the span classifier and the metadata judge: the real
transformers code runs; random weights write no JSON, which is what the malformed-answer
paths need. Deterministic."""

from __future__ import annotations

from pathlib import Path


def build_tiny_text_lm(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from precompute.tiny.qwen2vl import build_tokenizer

    tok = build_tokenizer()  # byte-level BPE with the Qwen specials; its template handles text-only chats
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
                      eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).eval()
    model.generation_config.pad_token_id = cfg.pad_token_id
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.do_sample = False
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return Path(out_dir)
