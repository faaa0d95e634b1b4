"""The image the captioner sees: sized as the authors' pipeline sizes it, so the grid is theirs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from precompute.captioner_inputs import FETCH_PIXELS, model_image

QWEN2_VL_2B = {"min_pixels": 3136, "max_pixels": 12845056}  # Qwen2-VL-2B-Instruct's preprocessor_config.json
TAMART = {"min_pixels": 256 * 28 * 28, "max_pixels": 1280 * 28 * 28}  # what TAMArt gives the processor


def grid_of(image: Image.Image) -> tuple[int, int]:
    return image.height // 28, image.width // 28


@pytest.mark.parametrize("size, expected", [
    # round(797/28) = 28, round(1000/28) = 36: 784x1008 px, within 1280 cells, kept
    ((1000, 797), (28, 36)),
    # 224^2 px < 256*28*28: scaled by sqrt(200704 / 50176) = 2
    ((224, 224), (16, 16)),
    # first rounded to 3192x4004 px, then over 1280*28*28: beta = sqrt(3192*4004 / 1003520) = 3.569,
    # floor(3192 / beta / 28) = floor(31.94) = 31, floor(4004 / beta / 28) = floor(40.07) = 40
    ((4000, 3188), (31, 40)),
])
def test_default_grid_by_hand(size, expected):
    image = model_image(Image.new("RGB", size))
    assert grid_of(image) == expected and image.size == (expected[1] * 28, expected[0] * 28)


@pytest.mark.parametrize("size", [(1000, 797), (4000, 3188), (224, 224), (300, 700)])
def test_the_real_processor_gives_the_authors_grid_and_keeps_the_canvas(size):
    """TAMArt: qwen-vl-utils rounds the sides to 28 px, then Qwen2-VL's image processor with
    their min/max pixels. Our canvas, given to the processor with Qwen2-VL-2B's own settings,
    is not resized again and has the same grid."""
    from transformers import Qwen2VLImageProcessor

    painting = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    fetched = model_image(painting, *FETCH_PIXELS)  # the first resize alone, as fetch_image does it
    theirs = Qwen2VLImageProcessor(**TAMART)(images=[fetched], return_tensors="pt")["image_grid_thw"][0].tolist()
    canvas = model_image(painting)
    ours = Qwen2VLImageProcessor(**QWEN2_VL_2B)(images=[canvas], return_tensors="pt")["image_grid_thw"][0].tolist()
    assert ours == theirs == [1, 2 * grid_of(canvas)[0], 2 * grid_of(canvas)[1]]
    assert grid_of(canvas)[0] * grid_of(canvas)[1] <= 1280


def test_published_grids(tamart_sample):
    """Every painting the authors published at its own size (longer side under their 1000-px web
    cap) has the grid their data shows. The others are web copies of larger WikiArt files (the
    1000x797 Starry Night was run at full size: 32x39); their grids stay within 1280 cells."""
    checked = 0
    for path in sorted((tamart_sample / "assets" / "data" / "paintings").glob("*.json")):
        data = json.loads(path.read_text())
        published = (data["grid_h"], data["grid_w"])
        assert published[0] * published[1] <= 1280
        if max(data["w"], data["h"]) < 1000:
            assert grid_of(model_image(Image.new("RGB", (data["w"], data["h"])))) == published, path.name
            checked += 1
    assert checked == 5
