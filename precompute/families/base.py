"""The captioner adapter interface: what tamscope reads from one family of VLMs.

A family says how to find its way in a prompt and a model, so that describe, reliance and
the TAM engine run unchanged on it:

- which transformers class loads it (`class_name`), chosen by the checkpoint config's
  `model_type` (precompute.families.family_for);
- the chat turn's end (the prompt text ends there, generation stops there) and the image run:
  its start, its placeholder (expanded by the processor to one token per vision cell) and its
  end; the config keys that must hold the same ids (`config_ids`);
- how the painting is sized for the vision encoder (`factor`: pixels per merged vision cell
  side) and on which grid the image tokens lie (`grid`: raster order over the merged grid);
- where the user's prompt text sits (`layout`: between the image run's end and the turn's end);
- what the chat template is told besides the turn (`chat_options`: Qwen3.5 answers without its
  thinking block);
- the last-layer states after the final norm and the LM head (`final_norm`, `lm_head`): read by
  hooks while generating and by the TAM engine, wherever the model's layers were placed.

Tiled families (several grids per image: InternVL, LLaVA-OneVision) also say where each grid lies
on the canvas (`tiling`, precompute.tiling; precompute.families.internvl, .llava_onevision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LayoutError(ValueError):
    """The prompt's tokens do not hold the layout the family expects."""


@dataclass(frozen=True)
class Family:
    model_type: str  # config.json's model_type
    label: str  # the family's name for people ("Qwen2-VL")
    class_name: str  # the transformers class that loads it
    factor: int  # pixels per merged vision cell side: the canvas's sides are multiples of it
    tokens: dict[str, str] = field(default_factory=lambda: dict(QWEN_TOKENS))
    config_ids: dict[str, str] = field(default_factory=lambda: dict(QWEN_CONFIG_IDS))
    # keyword arguments of the chat template (apply_chat_template), e.g. Qwen3.5's enable_thinking
    chat_options: dict[str, Any] = field(default_factory=dict)

    def model_class(self):
        import transformers

        return getattr(transformers, self.class_name)

    def model_image(self, image, min_pixels: int, max_pixels: int, processor=None):
        """The painting sized as the family's vision encoder takes it (precompute.captioner_inputs).
        processor: the captioner's (tiled families read their tile bounds from it)."""
        from precompute.captioner_inputs import model_image

        return model_image(image, min_pixels, max_pixels, self.factor)

    def token_id(self, tok, role: str) -> int:
        return tok.convert_tokens_to_ids(self.tokens[role])

    def layout(self, prompt_ids: list[int], tok) -> tuple[list[int], list[int]]:
        """(image-token positions, prompt-text positions) in the prompt's token ids."""
        return layout(prompt_ids, {"image": self.token_id(tok, "image"),
                                   "vision_end": self.token_id(tok, "image_end"),
                                   "im_end": self.token_id(tok, "turn_end")})

    def grid(self, inputs_row: dict[str, Any], processor) -> tuple[int, int]:
        """(gh, gw): the merged vision grid of one row of processor outputs."""
        _, h, w = inputs_row["image_grid_thw"].tolist()
        merge = processor.image_processor.merge_size
        return h // merge, w // merge

    def tiling(self, inputs_row: dict[str, Any], processor):
        """Where the image tokens lie (precompute.tiling): one grid here; tiled families
        (precompute.families.internvl) have several. inputs_row: the row's processor outputs
        (`image_grid_thw`), the canvas size (`canvas_size`, (w, h)) and image-token count (`n_image`)."""
        from precompute.tiling import single

        return single(*self.grid(inputs_row, processor))

    def stop_ids(self, tok) -> set[int]:
        """Ids that end a caption (the turn's end and the text end)."""
        return {tok.convert_tokens_to_ids(t) for t in (self.tokens["turn_end"], self.tokens["text_end"])}

    def final_norm(self, model):
        """The language model's final norm: its output is what the LM head reads."""
        return model.model.language_model.norm

    def lm_head(self, model):
        return model.get_output_embeddings()

    def problems(self, config, processor) -> list[str]:
        """What in a checkpoint's processor and config keeps describe from reading its prompts."""
        tok = getattr(processor, "tokenizer", None)
        if tok is None:
            return ["its processor has no tokenizer"]
        vocab = tok.get_vocab()  # added tokens included
        needed = [self.tokens[r] for r in ("turn_start", "turn_end", "image_start", "image_end", "image")
                  if r in self.tokens]  # LLaVA-OneVision's image run has no start and end tokens
        lacking = [t for t in needed if t not in vocab]
        found = [f"its tokenizer lacks {', '.join(lacking)}"] if lacking else []
        split = [t for t in needed if t in vocab and tok.encode(t, add_special_tokens=False) != [vocab[t]]]
        if split:
            found.append(f"its tokenizer splits {', '.join(split)} (not added tokens)")
        for key, role in self.config_ids.items():
            token = self.tokens[role]
            if token in vocab and getattr(config, key, None) != vocab[token]:
                found.append(f"config.json's {key} is {getattr(config, key, None)} but the tokenizer's {token} "
                             f"is {vocab[token]}")
        if not getattr(processor, "chat_template", None):
            found.append("it has no chat template")
        return found


# The tokens a Qwen-VL prompt is found by: the chat turns (the prompt text ends at <|im_end|>),
# the image run's borders and its placeholder; the config ids the model finds the image by
# (M-RoPE, the vision embedding's scatter).
QWEN_TOKENS = {"turn_start": "<|im_start|>", "turn_end": "<|im_end|>", "text_end": "<|endoftext|>",
               "image_start": "<|vision_start|>", "image_end": "<|vision_end|>", "image": "<|image_pad|>"}
QWEN_CONFIG_IDS = {"image_token_id": "image", "vision_start_token_id": "image_start",
                   "vision_end_token_id": "image_end"}


def layout(input_ids: list[int], ids: dict[str, int]) -> tuple[list[int], list[int]]:
    """(image-token positions, prompt-text positions): the image placeholder's run, and the
    tokens between the image run's end (`vision_end`) and the turn's end (`im_end`)."""
    image_pos = [i for i, t in enumerate(input_ids) if t == ids["image"]]
    if not image_pos:
        raise LayoutError("the prompt holds no image tokens (is this a vision-language model?)")
    after = input_ids.index(ids["vision_end"], image_pos[-1])
    end = input_ids.index(ids["im_end"], after)
    return image_pos, list(range(after + 1, end))
