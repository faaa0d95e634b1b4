"""InternVL (transformers' `internvl`: InternVL3-1B/2B/8B-hf, ...): a tiled family.

The image processor (GotOcr2's, `crop_to_patches`) cuts the image into 448-px tiles: it picks
`cols x rows` tiles (1 to `max_patches`, 12 by default) whose aspect ratio is closest to the
image's (`get_optimal_tiled_canvas`), resizes the image to cols*448 x rows*448 and crops the tiles
in raster order (left to right, then down); with more than one tile it appends a thumbnail, the
whole image resized to 448x448. Each tile gives 32x32 patches of 14 px, pixel-shuffled to 16x16
= 256 tokens (raster order: token i*16 + j covers patch rows 2i..2i+1 and columns 2j..2j+1), all
`<IMG_CONTEXT>`, in one run `<img>` ... `</img>` in the user turn:

    <|im_start|>user\\n<img><IMG_CONTEXT> x 256 (cols*rows + thumbnail)</img>\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n

What tamscope makes of it:
- the canvas is the image as the tiles cover it: resized (PIL bicubic) to cols*448 x rows*448, so
  the processor, given the canvas, picks the same tiles and resizes nothing (`model_image`);
- the stored grid is the composite (rows*16, cols*16): tile k's 16x16 block at row k // cols,
  column k % cols, so one grid cell covers 28x28 px of the canvas, as Qwen2-VL's;
- TAM treats the tiles as the authors' multi-image path treats images (precompute.tiling): ECI and
  normalisation over every image token (the thumbnail's included), the filter per tile, the
  tiles placed on the composite grid; the thumbnail's map is not stored (docs/tam.md);
- the prompt text is what lies between `</img>`'s newline and `<|im_end|>`: the newline the
  template writes after the image is markup, as `<|vision_end|>` is for Qwen2-VL, so the first
  prompt item is the prompt's first word in every family (docs/models.md, "Reference" per family).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from precompute.families.base import QWEN_TOKENS, Family, LayoutError
from precompute.tiling import Tiling, tile_grid

INTERNVL_TOKENS = {**QWEN_TOKENS, "image_start": "<img>", "image_end": "</img>", "image": "<IMG_CONTEXT>"}
TILE = 448  # pixels per tile side (the image processor's size, the vision config's image_size)
SIDE = 16  # tokens per tile side: (448 / 14 patches) x pixel shuffle 0.5


@dataclass(frozen=True)
class TiledFamily(Family):
    tokens: dict[str, str] = field(default_factory=lambda: dict(INTERNVL_TOKENS))
    config_ids: dict[str, str] = field(default_factory=lambda: {"image_token_id": "image"})

    @staticmethod
    def tile_shape(processor) -> tuple[int, int]:
        """(pixels per tile side, tokens per tile side) from the processor: its image size and
        `image_seq_length` (448 and 16x16 = 256 in every InternVL checkpoint; the tiny test
        model's tiles are smaller)."""
        if processor is None:
            return TILE, SIDE
        size = processor.image_processor.size
        height, width = (size["height"], size["width"]) if isinstance(size, dict) else (size.height, size.width)
        side = math.isqrt(processor.image_seq_length)
        if height != width or side * side != processor.image_seq_length:
            raise LayoutError(f"tiles of {width}x{height} px with {processor.image_seq_length} tokens are not square")
        return height, side

    def tile_counts(self, height: int, width: int, processor=None) -> tuple[int, int]:
        """(cols, rows): the tiles the processor cuts an image of this size into."""
        from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

        low, high = self.patch_bounds(processor)
        if high <= 1:
            return 1, 1
        tile, _ = self.tile_shape(processor)
        return get_optimal_tiled_canvas((height, width), (tile, tile), low, high)

    @staticmethod
    def patch_bounds(processor) -> tuple[int, int]:
        image = getattr(processor, "image_processor", None)
        return getattr(image, "min_patches", 1), getattr(image, "max_patches", 12)

    def model_image(self, image, min_pixels: int, max_pixels: int, processor=None):
        """The painting resized (PIL bicubic) to the tiles that cover it, cols*448 x rows*448: the
        processor cuts that canvas into the same tiles without resizing it. --min/--max-pixels
        bound the Qwen families' grids; here the processor's min/max_patches bound the tiles."""
        from PIL import Image

        cols, rows = self.tile_counts(image.height, image.width, processor)
        tile, _ = self.tile_shape(processor)
        size = (cols * tile, rows * tile)
        canvas = image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
        if self.tile_counts(canvas.height, canvas.width, processor) != (cols, rows):  # the tie rule of
            # get_optimal_tiled_canvas could tile the canvas otherwise (never within 12 tiles)
            raise LayoutError(f"the processor would tile the {size[0]}x{size[1]} canvas otherwise than the painting")
        return canvas

    def layout(self, prompt_ids: list[int], tok) -> tuple[list[int], list[int]]:
        image, end_img = self.token_id(tok, "image"), self.token_id(tok, "image_end")
        turn_end = self.token_id(tok, "turn_end")
        image_pos = [i for i, t in enumerate(prompt_ids) if t == image]
        if not image_pos:
            raise LayoutError("the prompt holds no image tokens (is this a vision-language model?)")
        after = prompt_ids.index(end_img, image_pos[-1])
        end = prompt_ids.index(turn_end, after)
        start = after + 1
        newline = tok.convert_tokens_to_ids("\u010a")  # "\n" as the byte-level BPE writes it
        if start < end and prompt_ids[start] == newline:  # the template's newline after the image
            start += 1
        return image_pos, list(range(start, end))

    def tiling(self, inputs_row: dict[str, Any], processor) -> Tiling:
        """The tiles of one canvas (`canvas_size` (w, h) in inputs_row), checked against the
        row's image-token count when given (`n_image`)."""
        width, height = inputs_row["canvas_size"]
        cols, rows = self.tile_counts(height, width, processor)
        _, side = self.tile_shape(processor)
        tiling = tile_grid(cols, rows, side, thumbnail=cols * rows > 1)
        n = inputs_row.get("n_image")
        if n is not None and n != tiling.n_tokens:
            raise LayoutError(f"{n} image tokens for {cols}x{rows} tiles of {side}x{side}"
                              f"{' + a thumbnail' if cols * rows > 1 else ''} ({tiling.n_tokens})")
        return tiling

    def grid(self, inputs_row: dict[str, Any], processor) -> tuple[int, int]:
        return self.tiling(inputs_row, processor).grid


INTERNVL = TiledFamily("internvl", "InternVL", "InternVLForConditionalGeneration", factor=TILE // SIDE)
