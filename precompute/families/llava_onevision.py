"""LLaVA-OneVision (transformers' `llava_onevision`: llava-hf/llava-onevision-qwen2-0.5b/7b/72b-ov-hf):
SigLIP + a Qwen2 language model, images in AnyRes tiles.

The image processor (`get_image_patches`) picks a resolution among `image_grid_pinpoints`
(multiples of 384 px, 1 to 6 crops a side) with `select_best_resolution`, resizes the image to fit
it (aspect kept), pads it, and cuts it into 384-px crops; the first "patch" is a base image, the
whole image resized to 384x384. SigLIP (patch 14, no CLS token) makes 27x27 = 729 features of each
(27 patches of 14 px cover 378 of the 384 px: the last 6 px of every crop, right and bottom, are
seen by no patch). The model (`pack_image_features`) then lays the features out as

    base 27x27 (raster) | the crops as ONE grid of (rows*27) x (cols*27), raster over the whole
                          canvas, with the `image_newline` feature after each of its rows

unpadding that grid to the image's aspect ratio (`unpad_image`) and, when it holds more than
(1.1^2 x 9) crops' worth of features (`vision_aspect_ratio` "anyres_max_9"), interpolating it down.
The prompt (the hub checkpoints' chat template; `<image>` expanded by the processor to all of those
tokens, newlines included):

    <|im_start|>user <image> x (729 + rows*27 * (cols*27 + 1))\\n{prompt}<|im_end|><|im_start|>assistant\\n

What tamscope makes of it (docs/models.md, docs/tam.md):
- the canvas is the painting resized (PIL bicubic) to a whole number of crops, cols*384 x rows*384,
  a pinpoint with at most as many crops as the model keeps without interpolating (10 with
  anyres_max_9): the processor then picks that pinpoint, resizes and pads nothing, and the model
  unpads and interpolates nothing, so every crop token has its exact place (`model_image`);
  cols x rows: the pinpoint whose aspect ratio is closest to the painting's, ties broken by the
  processor's own rule (`select_best_resolution` on the painting);
- the stored grid is the crops' grid (rows*27, cols*27); the base grid and the newline tokens take
  part in ECI and the normalisation (they are `<image>` tokens, as InternVL's thumbnail is an
  `<IMG_CONTEXT>`), lie on no grid and are not stored (precompute.tiling.base_and_crops);
- the prompt text is what lies between the image run's newline and `<|im_end|>`, as InternVL's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from precompute.families.base import QWEN_TOKENS, Family, LayoutError
from precompute.tiling import Tiling, base_and_crops

# the image run has no start or end token: the placeholder's run is all there is
LLAVA_ONEVISION_TOKENS = {"turn_start": QWEN_TOKENS["turn_start"], "turn_end": QWEN_TOKENS["turn_end"],
                          "text_end": QWEN_TOKENS["text_end"], "image": "<image>"}
CROP = 384  # pixels per crop side (the image processor's size, SigLIP's image_size)
SIDE = 27  # tokens per crop side: 384 // 14 (sqrt of the processor's num_image_tokens, 729)
STRETCH = 1.1  # pack_image_features interpolates a crop grid of more than (STRETCH^2 x max) crops


@dataclass(frozen=True)
class AnyResFamily(Family):
    tokens: dict[str, str] = field(default_factory=lambda: dict(LLAVA_ONEVISION_TOKENS))
    config_ids: dict[str, str] = field(default_factory=lambda: {"image_token_id": "image"})

    @staticmethod
    def crop_shape(processor) -> tuple[int, int]:
        """(pixels per crop side, tokens per crop side): the image processor's size and
        sqrt(num_image_tokens) (384 and 27 in every checkpoint; the tiny test model's are smaller)."""
        if processor is None:
            return CROP, SIDE
        size = processor.image_processor.size
        height, width = (size["height"], size["width"]) if isinstance(size, dict) else (size.height, size.width)
        side = math.isqrt(processor.num_image_tokens or 0)
        if height != width or side < 1 or side * side != processor.num_image_tokens:
            raise LayoutError(f"crops of {width}x{height} px with {processor.num_image_tokens} tokens are not square")
        return height, side

    @staticmethod
    def max_crops(processor) -> int:
        """The `N` of `anyres_max_N` (9 in every checkpoint)."""
        aspect = getattr(processor, "vision_aspect_ratio", None) or "anyres_max_9"
        number = aspect.removeprefix("anyres_max_")  # pack_image_features strips those letters off
        if not number.isdigit():
            raise LayoutError(f"vision_aspect_ratio {aspect!r} is not anyres_max_N")
        return int(number)

    def layouts(self, processor) -> list[tuple[int, int]]:
        """(cols, rows) of the pinpoints the model keeps as they are: whole crops, and a crop grid
        no bigger than pack_image_features leaves uninterpolated (its own ratio test)."""
        crop, side = self.crop_shape(processor)
        pinpoints = getattr(getattr(processor, "image_processor", None), "image_grid_pinpoints", None) or []
        limit = self.max_crops(processor)
        found = []
        for h, w in pinpoints:
            if h % crop or w % crop:
                continue
            rows, cols = h // crop, w // crop
            if math.sqrt(rows * side * cols * side / (limit * side**2)) <= STRETCH:
                found.append((cols, rows))
        if not found:
            raise LayoutError(f"no pinpoint of whole {crop}-px crops within anyres_max_{limit}")
        return found

    def crop_counts(self, height: int, width: int, processor) -> tuple[int, int]:
        """(cols, rows) for a painting of this size: the closest aspect ratio, then the processor's rule."""
        from transformers.image_processing_utils import select_best_resolution

        crop, _ = self.crop_shape(processor)
        candidates = self.layouts(processor)
        gap = {c: abs(math.log(c[0] / c[1] * height / width)) for c in candidates}
        best = min(gap.values())
        tied = [(rows * crop, cols * crop) for (cols, rows), g in gap.items() if g - best < 1e-9]
        h, w = select_best_resolution((height, width), tied)
        return w // crop, h // crop

    def model_image(self, image, min_pixels: int, max_pixels: int, processor=None):
        """The painting resized (PIL bicubic) to cols*384 x rows*384 (crop_counts): the processor
        picks exactly that pinpoint for it, so it resizes and pads nothing. --min/--max-pixels
        bound the Qwen families' grids; here the pinpoints and anyres_max_9 bound the crops."""
        from PIL import Image

        cols, rows = self.crop_counts(image.height, image.width, processor)
        crop, _ = self.crop_shape(processor)
        size = (cols * crop, rows * crop)
        canvas = image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
        self.canvas_crops(canvas.size, processor)  # the processor takes it as it is (else LayoutError)
        return canvas

    def canvas_crops(self, canvas_size: tuple[int, int], processor) -> tuple[int, int]:
        """(cols, rows) of a canvas (w, h) made by model_image; LayoutError for any other canvas."""
        from transformers.image_processing_utils import select_best_resolution

        width, height = canvas_size
        crop, _ = self.crop_shape(processor)
        cols, rows = width // crop, height // crop
        if (cols * crop, rows * crop) != (width, height) or (cols, rows) not in self.layouts(processor):
            raise LayoutError(f"a {width}x{height} canvas is not a pinpoint of whole {crop}-px crops")
        picked = select_best_resolution((height, width), processor.image_processor.image_grid_pinpoints)
        if tuple(picked) != (height, width):  # never for a pinpoint: it wastes nothing
            raise LayoutError(f"the processor would resize the {width}x{height} canvas to {picked[1]}x{picked[0]}")
        return cols, rows

    def layout(self, prompt_ids: list[int], tok) -> tuple[list[int], list[int]]:
        """Every `<image>` (base, crops and newlines: one run); the prompt text after the run and
        the newline the template writes before the text, up to `<|im_end|>`."""
        image, turn_end = self.token_id(tok, "image"), self.token_id(tok, "turn_end")
        image_pos = [i for i, t in enumerate(prompt_ids) if t == image]
        if not image_pos:
            raise LayoutError("the prompt holds no image tokens (is this a vision-language model?)")
        if image_pos != list(range(image_pos[0], image_pos[-1] + 1)):
            raise LayoutError("the prompt's image tokens are not one run (several images?)")
        start = image_pos[-1] + 1
        end = prompt_ids.index(turn_end, start)
        newline = tok.convert_tokens_to_ids("\u010a")  # "\n" as the byte-level BPE writes it
        if start < end and prompt_ids[start] == newline:  # the template's newline before the text
            start += 1
        return image_pos, list(range(start, end))

    def tiling(self, inputs_row: dict[str, Any], processor) -> Tiling:
        """The base grid and the crops' grid of one canvas (`canvas_size` (w, h)), checked against
        the row's image-token count when given (`n_image`)."""
        cols, rows = self.canvas_crops(inputs_row["canvas_size"], processor)
        _, side = self.crop_shape(processor)
        tiling = base_and_crops(side, cols, rows, side)
        n = inputs_row.get("n_image")
        if n is not None and n != tiling.n_tokens:
            raise LayoutError(f"{n} image tokens for a {side}x{side} base and {cols}x{rows} crops of {side}x{side} "
                              f"with a newline per row ({tiling.n_tokens})")
        return tiling

    def grid(self, inputs_row: dict[str, Any], processor) -> tuple[int, int]:
        return self.tiling(inputs_row, processor).grid

    def problems(self, config, processor) -> list[str]:
        found = super().problems(config, processor)
        # "default" drops a first feature as a CLS token (SigLIP has none): one token fewer per image
        for where, obj in (("config.json", config), ("the processor", processor)):
            strategy = getattr(obj, "vision_feature_select_strategy", "full")
            if strategy != "full":
                found.append(f"{where}'s vision_feature_select_strategy is {strategy!r} (tamscope reads 'full')")
        model_aspect = getattr(config, "vision_aspect_ratio", "anyres_max_9")
        proc_aspect = getattr(processor, "vision_aspect_ratio", "anyres_max_9")
        if model_aspect != proc_aspect:
            found.append(f"config.json's vision_aspect_ratio is {model_aspect!r} but the processor's is {proc_aspect!r}")
        return found


LLAVA_ONEVISION = AnyResFamily("llava_onevision", "LLaVA-OneVision", "LlavaOnevisionForConditionalGeneration",
                               factor=CROP // SIDE)  # 14 px: a cell's patch (model_image sizes the canvas)
