"""A tiny random-weight InternVL (InternVL3-hf layout: InternViT + pixel-shuffle projector + a
Qwen2 language model) with InternVL3's real tokenizer, rebuilt offline. Saved like a hub model.

Tokenizer (precompute.tiny.qwen2_tokenizer's BPE ranks): transformers' conversion script for
InternVL (`convert_internvl_weights_to_hf.py`, `write_tokenizer` for the Qwen2 backbones) loads
Qwen/Qwen2.5-VL-7B-Instruct's tokenizer and appends nine special tokens; so the ids are
- 151643..151656: Qwen2-VL's 14 special tokens (precompute.tiny.qwen2_tokenizer.SPECIAL_TOKENS);
- 151657..151664: Qwen2.5's 8 added tokens, not special (`<tool_call>` .. `<|file_sep|>`);
- 151665..151673: `<img>`, `</img>`, `<IMG_CONTEXT>`, `<quad>`, `</quad>`, `<ref>`, `</ref>`,
  `<box>`, `</box>` (special). `<IMG_CONTEXT>` = 151667 is InternVLConfig's default
  `image_token_id` for the Qwen2 backbones (the same script); `<img>` = 151665 and
  `<IMG_CONTEXT>` = 151667 are also what published InternVL tokenizer files list.
The processor finds the image tokens through the tokenizer's `start_image_token`,
`end_image_token`, `context_image_token` (the script's `extra_special_tokens`) and `video_token`.

Chat template: the conversion script's (ChatML, no system turn, the image then a newline then the
text) with the image written as `<IMG_CONTEXT>`, the placeholder transformers 5.23's
InternVLProcessor expands to `<img>` + 256 x tiles `<IMG_CONTEXT>` + `</img>` (the script's
older template wrote `<image>`, which this processor no longer expands). The hub's file itself
cannot be read offline: docs/models.md says so.

Model: hidden size 64, two layers each side; 14-px patches and pixel shuffle 0.5 as the real
model, in 112-px tiles by default (4x4 tokens; `tile=448` gives the real 16x16).
As the tiny Qwen2-VL (precompute.tiny.qwen2vl), the head is untied and only CORPUS's words and
punctuation keep head rows, so greedy decoding writes varied (nonsense) painting words.
"""

from __future__ import annotations

from pathlib import Path

from precompute.tiny.qwen2_tokenizer import (
    N_RANKS,
    SPECIAL_TOKENS,
    load_files,
    load_ranks,
    save_files,
    tokenizer_files,
    tokenizer_json,
)

QWEN2_5_ADDED = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                 "<|repo_name|>", "<|file_sep|>"]
INTERNVL_ADDED = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
# (content, special) in id order from N_RANKS = 151643
ADDED = [(t, True) for t in SPECIAL_TOKENS] + [(t, False) for t in QWEN2_5_ADDED] + [(t, True) for t in INTERNVL_ADDED]
IMAGE_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>"}
VOCAB_SIZE = 151674  # one embedding row per token up to </box> (151673); the hub checkpoints' size is not read here
TILE = 448  # pixels per tile side (InternVL's image_size)
HIDDEN = 64

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n' }}{% endif %}"
)


def tokenizer_config() -> dict:
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(N_RANKS + i): {"content": t, "lstrip": False, "normalized": False,
                                                    "rstrip": False, "single_word": False, "special": special}
                                 for i, (t, special) in enumerate(ADDED)},
        "additional_special_tokens": SPECIAL_TOKENS[1:] + INTERNVL_ADDED,
        "extra_special_tokens": {k: v for k, v in IMAGE_TOKENS.items() if k != "video_token"},
        "video_token": IMAGE_TOKENS["video_token"],
        "bos_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 8192, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


def _files() -> dict[str, bytes]:
    return tokenizer_files(tokenizer_json(load_ranks(), added=ADDED), tokenizer_config())


def save_internvl_tokenizer(folder: Path) -> Path:
    return save_files(folder, _files())


def internvl_tokenizer():
    return load_files(_files())


def internvl_processor(tok, tile: int = TILE):
    """InternVL3-hf's processor around `tok`: GotOcr2's image processor with 448-px tiles, at most
    12 (+ a thumbnail), ImageNet mean/std (the conversion script's), 256 tokens per tile (`tile`:
    another tile side, (tile / 28)^2 tokens per tile, for the tiny model)."""
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    image = GotOcr2ImageProcessor(do_resize=True, size={"height": tile, "width": tile}, crop_to_patches=True,
                                  min_patches=1, max_patches=12, do_rescale=True, rescale_factor=1 / 255,
                                  do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                                  image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)
    video = InternVLVideoProcessor(size={"height": tile, "width": tile}, image_mean=[0.485, 0.456, 0.406],
                                   image_std=[0.229, 0.224, 0.225])
    return InternVLProcessor(image_processor=image, tokenizer=tok, video_processor=video,
                             image_seq_length=(tile // 28) ** 2, chat_template=CHAT_TEMPLATE)


def tiny_internvl_config(tok, tile: int = TILE):
    import transformers

    ids = {name: tok.convert_tokens_to_ids(name) for name in ("<|endoftext|>", "<|im_end|>", "<IMG_CONTEXT>")}
    text_config = dict(model_type="qwen2", vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False)
    # 448-px tiles of 14-px patches: 32x32 patches, pixel shuffle 0.5 -> 16x16 = 256 tokens per tile
    vision_config = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                         image_size=[tile, tile], patch_size=[14, 14])
    return transformers.InternVLConfig(text_config=text_config, vision_config=vision_config,
                                       image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=(tile // 28) ** 2,
                                       downsample_ratio=0.5, tie_word_embeddings=False)


TINY_TILE = 112  # the tiny model's tiles: 8x8 patches, 4x4 = 16 tokens per tile (see build_tiny_internvl)


def build_tiny_internvl(out_dir: Path, seed: int = 0, tile: int = TINY_TILE) -> Path:
    """Build, save (model + processor) and return `out_dir`. Its tiles are 112 px (16 tokens)
    by default, not 448 (256): the layout is InternVL's (tiles in raster order, a thumbnail,
    pixel shuffle) while a painting stays a few hundred image tokens, so the plain-loop TAM
    reference of the tests (full-vocabulary logits at every position) fits in memory. tile=448
    gives the real sizes."""
    import transformers

    from precompute.tiny.qwen2vl import tiny_weights

    out_dir = Path(out_dir)
    tok = internvl_tokenizer()
    cfg = tiny_internvl_config(tok, tile)
    model = tiny_weights(transformers.InternVLForConditionalGeneration, cfg, tok, seed)
    model.save_pretrained(out_dir)
    internvl_processor(tok, tile).save_pretrained(out_dir)
    return out_dir
