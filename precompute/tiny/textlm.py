"""A tiny random-weight Qwen3 causal LM with Qwen's real tokenizer (9.8 M parameters, nearly all
of them the embedding of Qwen3-4B's 151,936-row vocabulary), saved like a hub model. For tests
of the span classifier and the metadata judge: the real transformers code runs; random weights
write no JSON, which is what the malformed-answer paths need. Deterministic.

With its tied embeddings and small initial weights the default model mostly repeats the last
token, whatever the prompt. `varied=True` unties the LM head and draws larger weights
(initializer_range 0.1): its greedy answers then depend on the whole prompt, which the batch
tests need to tell one row's answer from another's (tests/test_text_batches.py)."""

from __future__ import annotations

from pathlib import Path

VOCAB_SIZE = 151936  # Qwen/Qwen3-4B-Instruct-2507's config.json


def tiny_text_lm_config(tok, varied: bool = False):
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=not varied,
                       initializer_range=0.1 if varied else 0.02,
                       eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                       pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))


def build_tiny_text_lm(out_dir: Path, seed: int = 0, varied: bool = False) -> Path:
    import torch
    from transformers import Qwen3ForCausalLM

    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer

    tok = qwen2vl_tokenizer()  # Qwen's BPE and ChatML specials; its chat template handles text-only chats
    cfg = tiny_text_lm_config(tok, varied)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).eval()
    model.generation_config.pad_token_id = cfg.pad_token_id
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.do_sample = False
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return Path(out_dir)
