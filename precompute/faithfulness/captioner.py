"""The captioner as a scorer of images: log-likelihood of chosen caption tokens under teacher forcing.

`Session` holds one painting's teacher-forced layout (the prompt and the generated tokens of
describe, precompute.captioner_inputs) and turns canvas-sized float images into the model's
pixel values in torch, so the path from an image to a score is differentiable (iGOS++, the
gradient method) and batched (deletion and insertion curves):

    images (B, H, W, 3) float in [0, 255]
      -> / 255, (x - mean) / std              (the processor's rescale and normalisation)
      -> 14 x 14 patches in merge order        (the processor's patchify, (B * N, 3 * 2 * 14 * 14))
      -> the model, one teacher-forced pass per image, logits only where the chosen tokens are read

The canvas is already sized for the model (describe saves exactly what the model sees), so the
processor's resize is the identity and this path equals the processor's output
(tests/test_faithfulness_methods.py checks it against the processor).

Tiled families (InternVL, precompute.families.internvl) take the image as tiles: the canvas is
already cols x rows tiles of the processor's size, so each tile is a crop of it, and the
thumbnail (several tiles only) is the whole canvas resized to one tile by the processor's own
resize (torchvision, bicubic with antialias), here on float images so the path stays
differentiable, in the two passes of the processor's uint8 kernel (rows, then columns, each
clamped to [0, 255]); then the processor's rescale and normalisation:

    images (B, H, W, 3) float in [0, 255]
      -> the tiles of the session's `tiling` (crops where placed, the thumbnail resized) in token order
      -> * rescale_factor, (x - mean) / std   -> (B * tiles, 3, tile, tile)

The processor resizes the uint8 canvas in integer arithmetic and rounds each pass to uint8; this
path does not round: the thumbnail differs from the processor's by less than one 8-bit level, the
tiles not at all (tests/test_faithfulness_tiled.py; one pass without the clamps would differ by
up to 9 levels at the sharp edges of a real-size canvas, where bicubic overshoots).
The map methods then live on the composite grid (the record's grid): the tiles' cells placed as
describe places them (precompute.tiling.per_tile), the thumbnail's cells left out of the map.
AnyRes families (LLaVA-OneVision, precompute.families.llava_onevision) take a base image then
crops: the canvas is already cols x rows crops of the processor's size, a pinpoint it neither
resizes nor pads, so per image

    images (B, H, W, 3) float in [0, 255]
      -> [the whole canvas resized to one crop square (no padding to a square first: the
          processor's `resize` of the original image), the crops in raster order]
      -> * rescale_factor, (x - mean) / std   -> (B, 1 + crops, 3, crop, crop)

with `image_sizes` (and `batch_num_images`) repeated per image; the base is resized by the same
uint8 kernel as InternVL's thumbnail (`processor_resize`: < 1 level from the processor's, the
crops exact, tests/test_faithfulness_llava.py). The maps keep the crops' grid: the base grid
and the newline after each row are left out (precompute.tiling.per_tile), as describe does.
Families whose image inputs this module cannot build (neither one merged grid nor a tiling in
TILED_PIXELS or ANYRES_PIXELS) are refused by `Session.open` with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from precompute.captioner_inputs import prompt_inputs, teacher_forced_inputs
from precompute.tiling import Tiling, per_tile

# Tiled families (model_type) whose tiles are crops of the canvas plus a thumbnail of the whole
# canvas, which Session.tile_pixel_values builds; other families without `image_grid_thw` are
# refused by Session.open.
TILED_PIXELS = ("internvl",)
# AnyRes families (model_type) whose pixel values are a base image (the whole canvas resized to one
# crop) then the canvas's crops in raster order, one (1 + crops, 3, crop, crop) block per image,
# with the image's size beside them; Session.anyres_pixel_values builds them
ANYRES_PIXELS = ("llava_onevision",)


@dataclass
class Session:
    captioner: object
    forced: dict  # teacher-forced inputs of one image: input_ids (1, S), pixel_values, ...
    n_prompt: int
    generated: list[int]
    image_pos: torch.Tensor  # (N,) positions of the image tokens, raster order over the merged grid
    grid: tuple[int, int]  # merged vision grid (gh, gw); tiled families: the composite grid
    canvas_hw: tuple[int, int]
    tiling: Tiling | None = None  # tiled families: where each tile's tokens lie (None: one merged grid)

    @classmethod
    def open(cls, captioner, canvas, prompt: str, generated: list[int]) -> Session:
        inputs = prompt_inputs(captioner, canvas, prompt)
        forced = teacher_forced_inputs(inputs, generated)
        ids = forced["input_ids"][0]
        image_pos = (ids == captioner.image_token_id).nonzero()[:, 0].cpu()
        if "image_grid_thw" not in inputs:  # a tiled family: its maps are several grids placed on one
            return cls._open_tiled(captioner, canvas, inputs, forced, image_pos, generated)
        _, h, w = inputs["image_grid_thw"][0].tolist()
        merge = captioner.merge_size
        grid = (h // merge, w // merge)
        if image_pos.numel() != grid[0] * grid[1]:
            raise ValueError(f"{image_pos.numel()} image tokens for a {grid[0]}x{grid[1]} grid")
        return cls(captioner, forced, inputs["input_ids"].shape[1], list(generated), image_pos, grid,
                   (canvas.height, canvas.width))

    @classmethod
    def _open_tiled(cls, captioner, canvas, inputs, forced, image_pos, generated) -> Session:
        family = captioner.family
        if family.model_type not in TILED_PIXELS + ANYRES_PIXELS:
            raise ValueError(f"the faithfulness stage builds the image inputs of one merged vision grid (the Qwen-VL "
                             f"families), of {', '.join(TILED_PIXELS)}'s tiles and of "
                             f"{', '.join(ANYRES_PIXELS)}'s base image and crops; {family.label}'s image inputs "
                             f"are not supported by it yet (docs/faithfulness.md)")
        tiling = family.tiling({"canvas_size": canvas.size, "n_image": image_pos.numel()}, captioner.processor)
        return cls(captioner, forced, inputs["input_ids"].shape[1], list(generated), image_pos, tiling.grid,
                   (canvas.height, canvas.width), tiling)

    @property
    def anyres(self) -> bool:
        """A family of ANYRES_PIXELS (a base image and crops, `image_sizes` beside them)."""
        return self.tiling is not None and self.captioner.family.model_type in ANYRES_PIXELS

    @property
    def model(self):
        return self.captioner.model

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self):
        return self.forced["input_ids"].device

    # images -> model inputs ------------------------------------------------------------------
    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) float in [0, 255] -> (B * N_patches, 3 * T * p * p): the processor's
        rescale, normalisation and patchify, in torch (differentiable). Tiled families:
        (B * tiles, 3, tile, tile), `tile_pixel_values`; AnyRes families: (B, 1 + crops, 3, crop,
        crop), `anyres_pixel_values`."""
        if self.anyres:
            return self.anyres_pixel_values(images)
        if self.tiling is not None:
            return self.tile_pixel_values(images)
        ip = self.captioner.processor.image_processor
        p, m, tp = ip.patch_size, ip.merge_size, ip.temporal_patch_size
        b, h, w, c = images.shape
        if (h, w) != self.canvas_hw:
            raise ValueError(f"images are {h}x{w}, the canvas {self.canvas_hw[0]}x{self.canvas_hw[1]}")
        mean = torch.tensor(ip.image_mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(ip.image_std, dtype=images.dtype, device=images.device)
        x = ((images / 255.0 - mean) / std).permute(0, 3, 1, 2)  # (B, C, H, W)
        gh, gw = h // p, w // p
        x = x.reshape(b, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # (B, gh/m, gw/m, m, m, C, p, p): merge order
        x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, tp, -1, -1)  # the still image repeated in time
        return x.reshape(b * gh * gw, c * tp * p * p).to(self.dtype)

    def tile_pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) float in [0, 255] -> (B * tiles, 3, tile, tile): each image's tiles in the
        tiling's order (a placed tile: the canvas's crop under it; the unplaced thumbnail: the whole
        canvas resized to its size as the processor resizes, bicubic with antialias), rescaled and
        normalised (differentiable)."""
        ip = self.captioner.processor.image_processor
        b, h, w, c = images.shape
        if (h, w) != self.canvas_hw:
            raise ValueError(f"images are {h}x{w}, the canvas {self.canvas_hw[0]}x{self.canvas_hw[1]}")
        gh, gw = self.grid
        cell = h // gh  # canvas pixels per grid cell (28 for InternVL)
        if cell * gh != h or cell * gw != w:
            raise ValueError(f"a {h}x{w} canvas is not a whole number of cells of the {gh}x{gw} grid")
        x = images.permute(0, 3, 1, 2)  # (B, C, H, W)
        tiles = []
        for t in self.tiling.tiles:
            if t.top is None:  # the thumbnail, resized as the processor's uint8 kernel does
                tiles.append(processor_resize(x, (t.h * cell, t.w * cell)))
            else:
                tiles.append(x[:, :, t.top * cell:(t.top + t.h) * cell, t.left * cell:(t.left + t.w) * cell])
        x = torch.stack(tiles, 1)  # (B, tiles, C, tile, tile)
        mean = torch.tensor(ip.image_mean, dtype=images.dtype, device=images.device)[:, None, None]
        std = torch.tensor(ip.image_std, dtype=images.dtype, device=images.device)[:, None, None]
        x = (x * ip.rescale_factor - mean) / std
        return x.reshape(b * len(self.tiling.tiles), c, *x.shape[-2:]).to(self.dtype)

    def anyres_pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) float in [0, 255] -> (B, 1 + crops, 3, crop, crop), the processor's layout:
        each image's base (the whole canvas resized to one crop, not padded to a square first, as
        the processor's resize does: bicubic with antialias, two clamped passes) then its crops
        of crop x crop px in raster order (left to right, then down), rescaled and normalised
        (differentiable). The canvas is a whole number of crops (AnyResFamily.model_image), so
        the processor's own resize and padding to the pinpoint are the identity."""
        ip = self.captioner.processor.image_processor
        b, h, w, c = images.shape
        if (h, w) != self.canvas_hw:
            raise ValueError(f"images are {h}x{w}, the canvas {self.canvas_hw[0]}x{self.canvas_hw[1]}")
        crop, _ = self.captioner.family.crop_shape(self.captioner.processor)
        rows, cols = h // crop, w // crop
        if (rows * crop, cols * crop) != (h, w):
            raise ValueError(f"a {h}x{w} canvas is not a whole number of {crop}-px crops")
        x = images.permute(0, 3, 1, 2)  # (B, C, H, W)
        base = processor_resize(x, (crop, crop))[:, None]  # (B, 1, C, crop, crop)
        crops = x.reshape(b, c, rows, crop, cols, crop).permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, crop, crop)
        x = torch.cat([base, crops.reshape(b, rows * cols, c, crop, crop)], 1)  # (B, 1 + crops, C, crop, crop)
        mean = torch.tensor(ip.image_mean, dtype=images.dtype, device=images.device)[:, None, None]
        std = torch.tensor(ip.image_std, dtype=images.dtype, device=images.device)[:, None, None]
        return ((x * ip.rescale_factor - mean) / std).to(self.dtype)

    def on_grid(self, values):
        """(B, N) values of the image tokens -> (B, gh, gw) on the stored grid: one merged grid
        reshaped; tiles placed on the composite grid, the thumbnail's values left out (LLaVA-OneVision:
        the crops' grid kept, the base's and the row newlines' values left out)."""
        if self.tiling is None:
            return values.reshape(values.shape[0], *self.grid)
        return per_tile(values, self.tiling)

    def batch_inputs(self, images: torch.Tensor) -> dict:
        """Teacher-forced inputs for B images: the same tokens in every row."""
        b = images.shape[0]
        kw = {k: v.repeat(b, 1) for k, v in self.forced.items()
              if k in ("input_ids", "attention_mask", "mm_token_type_ids")}
        if self.tiling is None:
            kw["image_grid_thw"] = self.forced["image_grid_thw"].repeat(b, 1)
        if self.anyres:  # each row one image of the canvas's size: the model's crop count comes from it
            kw["image_sizes"] = self.forced["image_sizes"].repeat(b, 1)
            if "batch_num_images" in self.forced:
                kw["batch_num_images"] = self.forced["batch_num_images"].repeat(b)
        kw["pixel_values"] = self.pixel_values(images.to(self.device))
        return kw

    # scores ------------------------------------------------------------------------------------
    def token_logprobs(self, images: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
        """(B, K) log P(generated[k] | prompt, image, generated[:k]) for k in `tokens`, one row per
        image. Differentiable when grad is enabled."""
        return self.logprobs_of(self.batch_inputs(images), tokens)

    def logprobs_of(self, inputs: dict, tokens: Sequence[int], **extra) -> torch.Tensor:
        """(B, K) log-probabilities of the chosen caption tokens for prepared model inputs (B rows);
        the LM head only at the K positions that predict them."""
        idx = torch.as_tensor(list(tokens), dtype=torch.long)
        if idx.numel() == 0:
            raise ValueError("no tokens to score")
        if idx.min() < 0 or idx.max() >= len(self.generated):
            raise ValueError(f"token indices {idx.tolist()} outside the caption's {len(self.generated)} tokens")
        keep = (self.n_prompt - 1 + idx).to(self.device)  # position p predicts the token at p + 1
        logits = self.model(**inputs, **extra, logits_to_keep=keep).logits  # (B, K, V)
        logits = logits.to(torch.float64 if self.dtype == torch.float64 else torch.float32)
        ids = torch.tensor([self.generated[i] for i in idx.tolist()], device=logits.device)
        picked = logits.gather(2, ids[None, :, None].expand(logits.shape[0], -1, 1))[..., 0]
        return picked - torch.logsumexp(logits, dim=-1)

    def scorer(self, tokens: Sequence[int]):
        """A numpy scorer for precompute.faithfulness.curves: images -> sum of the tokens' log P."""
        tokens = list(tokens)

        def score(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
                return self.token_logprobs(x.to(torch.float64 if self.dtype == torch.float64 else torch.float32),
                                           tokens).sum(-1).double().cpu().numpy()

        return score

    def scorer_each(self, tokens: Sequence[int]):
        """A numpy scorer with one score per token: images -> (B, K) log P of each token
        (curves.faithfulness_curves with per_map: token k's map is ranked, its own log P scored)."""
        tokens = list(tokens)

        def score(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
                return self.token_logprobs(x.to(torch.float64 if self.dtype == torch.float64 else torch.float32),
                                           tokens).double().cpu().numpy()

        return score

    def torch_scorer(self, tokens: Sequence[int]):
        """A differentiable scorer for iGOS++: (B, H, W, 3) tensor -> (B,) sum of the tokens' log P."""
        tokens = list(tokens)
        return lambda images: self.token_logprobs(images, tokens).sum(-1)


def processor_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) float in [0, 255] -> (B, C, *size), as the processors' torchvision resize of a
    uint8 image (bicubic with antialias): the rows first (the width), then the columns, each pass
    clamped to [0, 255] (bicubic overshoots at sharp edges); not rounded, so gradients flow (the
    processor rounds each pass to uint8: the two differ by less than one 8-bit level)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as tvF

    resize = functools.partial(tvF.resize, interpolation=InterpolationMode.BICUBIC, antialias=True)
    rows = resize(x, [x.shape[-2], size[1]]).clamp(0, 255)
    return resize(rows, list(size)).clamp(0, 255)


def as_float(image) -> np.ndarray:
    """PIL RGB image -> (H, W, 3) float32 in [0, 255]."""
    return np.asarray(image.convert("RGB"), dtype=np.float32)
