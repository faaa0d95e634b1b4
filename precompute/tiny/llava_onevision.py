"""A tiny random-weight LLaVA-OneVision (llava-hf/llava-onevision-qwen2-*-ov-hf layout: SigLIP, a
two-layer GELU projector, the image newline, a Qwen2 language model) with the real tokenizer,
rebuilt offline. Saved like a hub model.

Tokenizer (precompute.tiny.qwen2_tokenizer's BPE ranks): transformers' conversion script
(`convert_llava_onevision_weights_to_hf.py`) loads Qwen/Qwen2-0.5B-Instruct's (or 7B/72B's)
tokenizer, whose added tokens are `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (151643..151645),
and adds `<image>` and `<video>` as special tokens: 151646 and 151647, the defaults of
transformers' LlavaOnevisionConfig (`image_token_index`, `video_token_index`). The script then
grows the embedding by two rows padded to a multiple of 64: Qwen2-0.5B's 151,936 -> 152,000.

Chat template: the one transformers' own LLaVA-OneVision processor tests use as the hub
checkpoints' (tests/models/llava_onevision/test_processing_llava_onevision.py): the role then a
space, the images, then "\\n" + the text, `<|im_end|>` without a newline, then the generation
prompt `<|im_start|>assistant\\n`. (The conversion script writes an older one, `<image>\\n` after
"user\\n"; the hub file itself cannot be read offline: docs/models.md says so.)

Processor: LlavaOnevisionProcessor with the checkpoints' settings (the conversion script's and
the hub's preprocessor_config.json): 384-px crops, pinpoints of 1..6 crops a side, bicubic,
mean = std = 0.5, num_image_tokens 729, vision_feature_select_strategy "full", anyres_max_9.

Model: hidden size 64, two layers each side; 14-px patches, in 60-px crops by default (4x4 tokens,
56 of the 60 px seen, as the real 27 patches see 378 of 384; `crop=384` gives the real sizes). As
the tiny Qwen2-VL (precompute.tiny.qwen2vl), the head is untied and only CORPUS's words and
punctuation keep head rows, so greedy decoding writes varied (nonsense) painting words.
"""

from __future__ import annotations

from pathlib import Path

from precompute.tiny.qwen2_tokenizer import N_RANKS, load_files, load_ranks, tokenizer_files, tokenizer_json

# (content, special) in id order from N_RANKS = 151643: Qwen2-Instruct's three, then LLaVA-OV's two
ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<image>", True), ("<video>", True)]
VOCAB_SIZE = 152000  # Qwen2-0.5B's 151,936 rows + 2, padded to a multiple of 64 (the conversion script)
CROP = 384
HIDDEN = 64
TINY_CROP = 60  # the tiny model's crops: 4x4 patches of 14 px (56 px seen), 16 tokens a crop

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def pinpoints(crop: int = CROP) -> list[list[int]]:
    """(height, width) of 1..6 crops a side, in the checkpoints' order."""
    return [[rows * crop, cols * crop] for rows in range(1, 7) for cols in range(1, 7)]


def tokenizer_config() -> dict:
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(N_RANKS + i): {"content": t, "lstrip": False, "normalized": False,
                                                    "rstrip": False, "single_word": False, "special": special}
                                 for i, (t, special) in enumerate(ADDED)},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<image>", "<video>"],
        "bos_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


def _files() -> dict[str, bytes]:
    return tokenizer_files(tokenizer_json(load_ranks(), added=ADDED), tokenizer_config())


def llava_onevision_tokenizer():
    return load_files(_files())


def llava_onevision_processor(tok, crop: int = CROP):
    """The checkpoints' processor around `tok` (`crop`: another crop side for the tiny model,
    (crop // 14)^2 tokens per crop)."""
    from transformers import (
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    image = LlavaOnevisionImageProcessor(do_resize=True, size={"height": crop, "width": crop},
                                         image_grid_pinpoints=pinpoints(crop), resample=3, do_rescale=True,
                                         rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3,
                                         image_std=[0.5] * 3, do_pad=True, do_convert_rgb=True)
    video = LlavaOnevisionVideoProcessor(size={"height": crop, "width": crop}, image_mean=[0.5] * 3,
                                         image_std=[0.5] * 3)
    return LlavaOnevisionProcessor(image_processor=image, tokenizer=tok, video_processor=video,
                                   num_image_tokens=(crop // 14) ** 2, vision_feature_select_strategy="full",
                                   vision_aspect_ratio="anyres_max_9", chat_template=CHAT_TEMPLATE)


def tiny_llava_onevision_config(tok, crop: int = CROP):
    import transformers

    ids = {name: tok.convert_tokens_to_ids(name) for name in ("<|endoftext|>", "<|im_end|>", "<image>", "<video>")}
    text_config = dict(model_type="qwen2", vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False)
    vision_config = dict(model_type="siglip_vision_model", hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, image_size=crop, patch_size=14,
                         vision_use_head=False)
    return transformers.LlavaOnevisionConfig(
        text_config=text_config, vision_config=vision_config, image_token_index=ids["<image>"],
        video_token_index=ids["<video>"], vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints(crop), vision_aspect_ratio="anyres_max_9", tie_word_embeddings=False)


def build_tiny_llava_onevision(out_dir: Path, seed: int = 0, crop: int = TINY_CROP) -> Path:
    """Build, save (model + processor) and return `out_dir`. Its crops are 60 px (16 tokens) by
    default, not 384 (729): the layout is LLaVA-OneVision's (base image, crops as one grid with a
    newline per row) while a painting stays a few hundred image tokens, so the plain-loop TAM
    reference of the tests (full-vocabulary logits at every position) fits in memory."""
    import transformers

    from precompute.tiny.qwen2vl import tiny_weights

    out_dir = Path(out_dir)
    tok = llava_onevision_tokenizer()
    cfg = tiny_llava_onevision_config(tok, crop)
    model = tiny_weights(transformers.LlavaOnevisionForConditionalGeneration, cfg, tok, seed)
    model.save_pretrained(out_dir)
    llava_onevision_processor(tok, crop).save_pretrained(out_dir)
    return out_dir
