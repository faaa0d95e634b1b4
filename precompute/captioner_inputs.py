"""The captioner's model inputs, shared by describe (generation + TAM) and reliance.

Both stages must feed the model exactly the same token layout: the chat template with one
image and the prompt, then, for teacher forcing, the prompt followed by the generated tokens.
Keeping that in one place guarantees that reliance scores the very sequence describe produced.

The image is sized as the authors' pipeline (TAMArt) sizes it, so the vision grid is theirs:
qwen-vl-utils' `fetch_image` first rounds the painting's sides to multiples of 28 (between
4 and 16384 merged tokens), then the processor, given min_pixels = 256*28*28 and max_pixels
= 1280*28*28, resizes into that range (at most 1280 merged vision tokens); both resizes are
Qwen2-VL's `smart_resize` with PIL's bicubic filter. `model_image` does both, so the canvas
describe saves is exactly the image the model sees and the processor leaves it as it is.
"""

from __future__ import annotations

from typing import Any

FACTOR = 28  # Qwen2-VL / Qwen2.5-VL: 14-px patches merged 2x2, one merged vision token per 28x28 px (the default; a
# family may have another: precompute.families, Family.factor)
MIN_PIXELS, MAX_PIXELS = 256 * FACTOR * FACTOR, 1280 * FACTOR * FACTOR  # TAMArt's processor bounds
FETCH_PIXELS = (4 * FACTOR * FACTOR, 16384 * FACTOR * FACTOR)  # qwen-vl-utils' first resize


def model_image(image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS, factor: int = FACTOR):
    """The painting (PIL RGB) resized as the authors' pipeline feeds it to Qwen2-VL: sides are
    multiples of `factor` and the area lies within [min_pixels, max_pixels] (see above)."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for low, high in (FETCH_PIXELS, (min_pixels, max_pixels)):
        h, w = smart_resize(image.height, image.width, factor, low, high)
        if (w, h) != image.size:
            image = image.resize((w, h), Image.Resampling.BICUBIC)
    return image


def prompt_inputs(captioner, image, prompt: str):
    """Chat template (user: image + prompt; generation prompt appended) -> processor outputs on
    the captioner's device: input_ids (1, P), attention_mask, pixel_values, image_grid_thw and,
    for Qwen2-VL in transformers 5, mm_token_type_ids (1, P)."""
    return batch_inputs(captioner, [image], [prompt])


def batch_inputs(captioner, images: list, prompts: list[str]):
    """prompt_inputs for B paintings at once: input_ids (B, P_max) left-padded (the generated
    tokens then follow every row's prompt directly), attention_mask (B, P_max) with 0 on the
    padding, pixel_values of all images, image_grid_thw (B, 3), mm_token_type_ids (B, P_max)."""
    proc = captioner.processor
    family = getattr(captioner, "family", None)
    options = family.chat_options if family is not None else {}  # e.g. Qwen3.5: enable_thinking=False
    texts = []
    for prompt in prompts:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        texts.append(proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **options))
    return proc(images=list(images), text=texts, padding=True, padding_side="left",
                return_tensors="pt").to(captioner.device)


def teacher_forced_inputs(inputs, generated: list[int]) -> dict[str, Any]:
    """Keyword arguments for one forward pass over prompt + `generated` (no cache, no sampling).

    input_ids (1, P + T); the image is the one of `inputs` (pixel_values, image_grid_thw).
    """
    return batch_teacher_forced_inputs(inputs, [generated])


def batch_teacher_forced_inputs(inputs, generated: list[list[int]]) -> dict[str, Any]:
    """teacher_forced_inputs for the B rows of batch_inputs: row b is prompt_b + generated[b],
    left-padded to S_max = max(P_b + T_b). input_ids and attention_mask (B, S_max); M-RoPE's
    positions come from the model's get_rope_index with that mask, so padding shifts nothing."""
    import torch

    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    device = ids.device
    types = inputs.get("mm_token_type_ids")
    rows, row_types = [], []
    for b, answer in enumerate(generated):
        keep = mask[b].bool()
        rows.append(ids[b][keep].tolist() + list(answer))
        if types is not None:
            row_types.append(types[b][keep].tolist() + [0] * len(answer))
    width = max(len(r) for r in rows)
    pad = captioner_pad_id(ids, mask)

    def left(values: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([[fill] * (width - len(v)) + v for v in values], device=device)

    full = left(rows, pad)
    kwargs = {"input_ids": full, "attention_mask": left([[1] * len(r) for r in rows], 0),
              "pixel_values": inputs["pixel_values"]}
    if "image_grid_thw" in inputs:  # Qwen-VL families; InternVL's tiles need only pixel_values
        kwargs["image_grid_thw"] = inputs["image_grid_thw"]
    for key in ("image_sizes", "batch_num_images"):  # LLaVA-OneVision: its crops come from the image's size
        if key in inputs:
            kwargs[key] = inputs[key]
    if types is not None:  # M-RoPE needs to know which tokens are image tokens
        kwargs["mm_token_type_ids"] = left(row_types, 0).to(types.dtype)
    return kwargs


def captioner_pad_id(ids, mask) -> int:
    """The id the processor padded with (any id will do under a 0 mask; 0 when nothing was padded)."""
    padded = ids[mask == 0]
    return int(padded[0]) if padded.numel() else 0
