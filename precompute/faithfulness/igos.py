"""iGOS++ (Khorram et al. 2021) as the seed paper extends it to LVLMs (Xing et al. 2025, section 3.3).

One heatmap H on the vision grid (gh, gw), values in [0, 1] (1: the region matters), upsampled
bilinearly to the canvas. With the image I, the blurred baseline B and
Phi(M) = I * M + B * (1 - M) (the paper's Eq. 2), the paper's single-mask objective (Eq. 8),
written for H = 1 - M (the paper's M is the "keep" mask), is

    min_H  f(Phi(1 - H)) - f(Phi(H))                      deletion low, insertion high
           + l1 mean(H)                                   sparsity           (||1 - M||_1)
           + l2 exp(-gamma t) sqrt(mean(H^2))             graduated non-convexity, t = iteration
           + l3 BTV(H)                                    bilateral total variation

with f the score (the cumulative log-likelihood of the visually relevant tokens, the paper's
Eq. 7; precompute.faithfulness.methods picks the tokens). Norms are means over the grid so the
weights do not depend on its size. Defaults: the paper's l1 = 1, l2 = 0.1, l3 = 10, decay
gamma = 0.2 (its appendix's alpha).

Integrated gradients (I-GOS): each score term is replaced by its average along the straight
path from the baseline, f(Phi(a M)) for a = 1/s, 2/s, .., 1 (as the authors' code does), whose
gradient integrates the gradients along the path instead of reading one point.

The update is projected, normalised gradient descent: H <- clip(H - lr_t g / max|g|, 0, 1), so
the step does not depend on the score's scale (log-likelihoods of a few tokens or of many),
with lr_t = lr (1 - t / iterations) decaying linearly (constant steps oscillate around the
region's border: tests/test_faithfulness_igos.py);
I-GOS's backtracking line search would add forward passes per iteration. H starts at 0 (nothing
deleted, nothing inserted). Cost per map: `iterations` x 2 `ig_steps` forward and backward
passes (the path images batched `batch_size` at a time).

BTV (iGOS++'s bilateral TV): the mean squared difference of neighbouring grid cells, plus the
same on the canvas-sized mask weighted by exp(-(image difference)^2 / sigma) (image in [0, 1],
mean over channels), so the mask may change where the image has an edge; the two halves averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

TorchScorer = Callable[[torch.Tensor], torch.Tensor]  # (B, H, W, C) images -> (B,) scores


@dataclass(frozen=True)
class IgosSettings:
    iterations: int = 10
    ig_steps: int = 5  # points on the integration path
    l1: float = 1.0
    l2: float = 0.1  # graduated non-convexity: l2 exp(-gamma t)
    gamma: float = 0.2
    l3: float = 10.0  # bilateral TV
    sigma: float = 0.1  # bilateral weight width, image in [0, 1]
    lr: float = 0.2  # largest change of a cell in the first iteration
    batch_size: int = 8

    def as_dict(self) -> dict:
        return asdict(self)


def upsample(h: torch.Tensor, canvas_hw: tuple[int, int]) -> torch.Tensor:
    """(gh, gw) -> (H, W), bilinear, pixel-centre aligned (as cv2.INTER_LINEAR)."""
    return F.interpolate(h[None, None], size=canvas_hw, mode="bilinear", align_corners=False)[0, 0]


def bilateral_tv(h: torch.Tensor, up: torch.Tensor, image01: torch.Tensor, sigma: float) -> torch.Tensor:
    """h (gh, gw), up (H, W) its upsampled mask, image01 (H, W, C) in [0, 1] -> scalar."""
    tv = ((h[1:] - h[:-1]) ** 2).mean() if h.shape[0] > 1 else h.new_zeros(())
    tv = tv + (((h[:, 1:] - h[:, :-1]) ** 2).mean() if h.shape[1] > 1 else 0)
    wy = torch.exp(-((image01[1:] - image01[:-1]).mean(-1) ** 2) / sigma)  # (H-1, W)
    wx = torch.exp(-((image01[:, 1:] - image01[:, :-1]).mean(-1) ** 2) / sigma)  # (H, W-1)
    btv = (wy * (up[1:] - up[:-1]) ** 2).mean() + (wx * (up[:, 1:] - up[:, :-1]) ** 2).mean()
    return 0.5 * (tv + btv)


def _path_parts(score: TorchScorer, image: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor,
                settings: IgosSettings):
    """The integrated path score, mean over a = 1/s .. 1 of f(Phi(a * mask)), in parts of at most
    batch_size images: each part is backpropagated alone (its graph freed before the next)."""
    s = settings.ig_steps
    alphas = torch.arange(1, s + 1, dtype=image.dtype) / s
    for start in range(0, s, settings.batch_size):
        a = alphas[start:start + settings.batch_size, None, None, None]  # (b, 1, 1, 1)
        m = a * mask[None, :, :, None]  # (b, H, W, 1)
        yield score(image[None] * m + baseline[None] * (1 - m)).sum() / s


def igos_map(score: TorchScorer, image: np.ndarray, baseline: np.ndarray, grid_hw: tuple[int, int],
             settings: IgosSettings = IgosSettings(), dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The heatmap (gh, gw) in [0, 1] for one image (H, W, C, float in [0, 255]) and its baseline."""
    img = torch.as_tensor(np.asarray(image), dtype=dtype)
    base = torch.as_tensor(np.asarray(baseline), dtype=dtype)
    if img.ndim != 3 or img.shape != base.shape:
        raise ValueError(f"image {tuple(img.shape)} and baseline {tuple(base.shape)} must be (H, W, C) of one size")
    canvas_hw = (img.shape[0], img.shape[1])
    image01 = img / 255.0
    h = torch.zeros(grid_hw, dtype=dtype, requires_grad=True)
    with torch.enable_grad():  # also where the caller turned gradients off
        _optimise(h, score, img, base, image01, canvas_hw, settings)
    return h.detach().cpu().numpy().astype(np.float64)


def _optimise(h, score, img, base, image01, canvas_hw, settings) -> None:
    for t in range(settings.iterations):
        # gradients w.r.t. H alone (torch.autograd.grad): the model's weights get none, so the
        # backward computes no weight gradients and stores none (8.8 GB for Qwen2-VL-2B in float32)
        g = torch.zeros_like(h)
        # deletion: keep 1 - H of the image; its path score is minimised
        for part in _path_parts(score, img, base, 1 - upsample(h, canvas_hw), settings):
            g += torch.autograd.grad(part, h)[0]
        # insertion: show H of the image; its path score is maximised
        for part in _path_parts(score, img, base, upsample(h, canvas_hw), settings):
            g -= torch.autograd.grad(part, h)[0]
        reg = (settings.l1 * h.mean()
               + settings.l2 * math.exp(-settings.gamma * t) * torch.sqrt((h ** 2).mean() + 1e-12)
               + settings.l3 * bilateral_tv(h, upsample(h, canvas_hw), image01, settings.sigma))
        g += torch.autograd.grad(reg, h)[0]
        with torch.no_grad():
            peak = g.abs().max()
            if not torch.isfinite(peak):
                raise FloatingPointError("iGOS++: the gradient is not finite")
            if peak > 0:
                h -= settings.lr * (1 - t / settings.iterations) * g / peak  # linear decay to 0
            h.clamp_(0, 1)
