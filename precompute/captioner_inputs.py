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

FACTOR = 28  # Qwen2-VL / Qwen2.5-VL: 14-px patches merged 2x2, one merged vision token per 28x28 px
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
    proc = captioner.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return proc(images=[image], text=[text], return_tensors="pt").to(captioner.device)


def teacher_forced_inputs(inputs, generated: list[int]) -> dict[str, Any]:
    """Keyword arguments for one forward pass over prompt + `generated` (no cache, no sampling).

    input_ids (1, P + T); the image is the one of `inputs` (pixel_values, image_grid_thw).
    """
    import torch

    device = inputs["input_ids"].device
    full = torch.tensor([inputs["input_ids"][0].tolist() + list(generated)], device=device)
    kwargs = {"input_ids": full, "attention_mask": torch.ones_like(full),
              "pixel_values": inputs["pixel_values"], "image_grid_thw": inputs["image_grid_thw"]}
    if "mm_token_type_ids" in inputs:  # M-RoPE needs to know which tokens are image tokens
        kwargs["mm_token_type_ids"] = torch.nn.functional.pad(inputs["mm_token_type_ids"], (0, len(generated)))
    return kwargs
