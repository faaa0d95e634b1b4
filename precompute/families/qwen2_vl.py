"""Qwen2-VL and Qwen2.5-VL: one image run of `<|image_pad|>` between `<|vision_start|>` and
`<|vision_end|>` in the user turn, in raster order over one merged grid (14-px patches merged
2x2: one cell per 28x28 px); the prompt text follows the image up to `<|im_end|>`. Qwen2.5-VL
differs in the vision encoder only (windowed attention, an RMS-norm merger)."""

from precompute.families.base import Family

QWEN2_VL = Family("qwen2_vl", "Qwen2-VL", "Qwen2VLForConditionalGeneration", factor=28)
QWEN2_5_VL = Family("qwen2_5_vl", "Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", factor=28)
