"""The captioner's model inputs, shared by describe (generation + TAM) and reliance.

Both stages must feed the model exactly the same token layout: the chat template with one
image and the prompt, then, for teacher forcing, the prompt followed by the generated tokens.
Keeping that in one place guarantees that reliance scores the very sequence describe produced.
"""

from __future__ import annotations

from typing import Any


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
