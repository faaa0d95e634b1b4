"""Token Activation Maps (TAM, Li et al., ICCV 2025), exact and vectorised, in two variants.

Inputs: the last-layer hidden states of the whole sequence (after the final norm), the LM-head
weight, the token ids, where the image tokens sit (raster order over the merged vision grid),
where the user's prompt text sits, and where the generated tokens sit.

`reference` (the default of describe): the authors' maps, bit for bit on the same hidden
states, quirks included (generated token 0 gets the first prompt word's map, the repeat rule
compares re-tokenised strings, NaN where they divide by zero is stored as 0 and counted). It
lives in precompute.tam_reference and needs `ReferenceInputs` from the tokenizer.

`corrected` (this module, `reference=None`): for every generated token t with class
c = ids[gen_pos[t]]:

1. Raw map. The class-c logit read at every image position, clipped at 0:
   m = relu(H[image_pos] @ W[c]).  Text relevance: the same read-out at the context positions,
   r_k = relu(H[q_k] @ W[c]).
2. Estimated causal inference (ECI). Context items are the P prompt-text tokens, then the
   generated tokens before t. Item k has its own raw map M[k] (its class read on the image)
   and a relevance position q_k: the prompt token's own position, or for generated token j
   the position that predicted it (gen_pos[j] - 1), as in the authors' code. Items whose
   token equals t are skipped (a repeated word is not interference). The interference is
   I = sum_k w_k M[k] with w = r / (sum r + 1e-8); it is removed with the least-squares scale
   s = <m, I> / <I, I> (closed form; 0 when I = 0): eci = relu(m - s I).
3. Normalisation. Joint min-max over the ECI map and the text relevance of all earlier items
   (lo, hi); a zero range gives a zero map instead of NaN.
4. Rank Gaussian filter. In each 3x3 window (reflect padding) the 9 values are sorted and
   averaged with Gaussian weights over rank whose width is the window's coefficient of
   variation (std / mean). A constant window has width 0: the limit is the median, which is
   what we return (the reference divides by zero there and returns NaN).

The 8-bit map is floor(255 * filtered), as the reference's astype(uint8).

Departures of `corrected` from the authors' code (docs/tam.md has the table):
- Token 0 gets its own class's map with ECI over the prompt text, and is its own context item
  (the authors: the first prompt word's argmax-class map, and the `\\n`-class map as its item).
- The first prompt item is the first prompt token's own class (the authors: the argmax there).
- Repetition is decided on token ids (the authors compare re-tokenised strings).
- No NaN: constant windows, zero ranges and empty contexts are defined above.
Both variants read only the LM-head rows of the classes that occur, never the full-vocabulary
logits at every position (the authors: ~0.4 GB per painting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from precompute.tiling import Tiling, per_tile, single

if TYPE_CHECKING:
    from precompute.tam_reference import ReferenceInputs

KERNEL = 3  # rank filter window side
FILTER_CHUNK = 32  # maps filtered at once: small planes stay in cache and bound the memory (~1 MB per 9 at 32x32)
EPS_WEIGHT = 1e-8  # as in the reference: w = r / (sum r + 1e-8)
EPS_RANGE = 1e-12


@dataclass(frozen=True)
class TamResult:
    raw: np.ndarray  # (T, gh, gw) float32, ECI map before normalisation
    lo: np.ndarray  # (T,) float32, normalisation minimum
    hi: np.ndarray  # (T,) float32, normalisation maximum
    maps: np.ndarray  # (T, gh, gw) float32 in [0, 1], normalised and filtered
    maps_u8: np.ndarray  # (T, gh, gw) uint8, floor(255 * maps)
    text_relevance: np.ndarray  # (T, P+T) float32; row t holds r_k for k < P+t, 0 elsewhere
    interference_scale: np.ndarray  # (T,) float32, least-squares s (0 without interference)
    class_ids: np.ndarray  # (T,) int64, the class each map reads (reference token 0: the argmax class)
    nan_cells: np.ndarray  # (T,) int32, cells the reference computes as NaN (stored as 0); 0 in corrected
    undefined: np.ndarray  # (T,) bool, maps the authors' code cannot compute (it raises); False in corrected


# A sorting network for 9 values: 25 compare-exchanges (sorts every 0/1 input, hence every input)
SORT9 = ((0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (0, 3), (3, 6), (0, 3), (1, 4),
         (4, 7), (1, 4), (2, 5), (5, 8), (2, 5), (1, 3), (5, 7), (2, 6), (4, 6), (2, 4), (2, 3), (5, 6))


def sorted_windows(x: torch.Tensor) -> list[torch.Tensor]:
    """(B, H, W) -> 9 x (B, H, W): every cell's 3x3 window (np.pad(mode="reflect") at the borders),
    sorted ascending (plane k holds each window's k-th smallest value), by compare-exchanges of
    whole maps (no per-window sort)."""
    _, h, w = x.shape
    padded = _reflect_pad(x, KERNEL // 2)  # (B, H+2, W+2)
    v = [padded[:, i:i + h, j:j + w] for i in range(KERNEL) for j in range(KERNEL)]  # 9 x (B, H, W)
    for a, b in SORT9:
        v[a], v[b] = torch.minimum(v[a], v[b]), torch.maximum(v[a], v[b])
    return v


def rank_gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, H, W): the 3x3 rank Gaussian filter with CV width, no loop over cells."""
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], FILTER_CHUNK):
        out[start:start + FILTER_CHUNK] = _rank_gaussian_filter(x[start:start + FILTER_CHUNK])
    return out


def _rank_gaussian_filter(x: torch.Tensor) -> torch.Tensor:
    ranked = torch.stack(sorted_windows(x))  # (9, B, H, W)
    mean = ranked.mean(0)
    # population std written out: torch's std kernel is slower on this small dim
    std = (ranked - mean).square().mean(0).sqrt()
    sigma = std / mean.clamp_min(torch.finfo(x.dtype).tiny)  # coefficient of variation
    ax = torch.arange(KERNEL * KERNEL, dtype=x.dtype, device=x.device) - (KERNEL * KERNEL) // 2
    safe_sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    kernel = torch.exp(-(ax**2)[:, None, None, None] / (2 * safe_sigma**2))  # (9, B, H, W)
    value = (ranked * kernel).sum(0) / kernel.sum(0)
    median = ranked[(KERNEL * KERNEL) // 2]
    value = torch.where(sigma > 0, value, median)  # constant window: the limit sigma -> 0
    return torch.where(mean > 0, value, torch.zeros_like(value))


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """numpy 'reflect' padding of the last two dims; a side of length 1 repeats its value."""
    def pad_dim(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        if n == 1:
            return torch.cat([t] * (2 * pad + 1), dim=dim)
        # mirror without repeating the edge: indices pad..1, 0..n-1, n-2..n-1-pad
        idx = torch.cat([torch.arange(pad, 0, -1), torch.arange(n), torch.arange(n - 2, n - 2 - pad, -1)])
        return t.index_select(dim, idx.to(t.device))

    return pad_dim(pad_dim(x, 1), 2)


@torch.no_grad()
def compute_tam(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    ids: torch.Tensor,
    image_pos: torch.Tensor,
    grid_hw: tuple[int, int],
    prompt_pos: torch.Tensor,
    gen_pos: torch.Tensor,
    lm_head_bias: torch.Tensor | None = None,
    reference: ReferenceInputs | None = None,
    tiling: Tiling | None = None,
) -> TamResult:
    """TAM for every generated token. Shapes: hidden (S, D), lm_head_weight (V, D), ids (S,),
    image_pos (N,) with N = gh * gw, prompt_pos (P,), gen_pos (T,).

    reference: None for the corrected variant; the tokenizer's strings and the first prompt
    class (precompute.tam_reference.ReferenceInputs) for the authors' maps.
    tiling: where the image tokens lie when they fill several grids (precompute.tiling: each
    grid filtered on its own and placed on the composite grid `grid_hw`, unplaced grids not
    stored; N = tiling.n_tokens); None: one grid, N = gh * gw."""
    gh, gw = grid_hw
    tiling = tiling or single(gh, gw)
    if tiling.grid != (gh, gw):
        raise ValueError(f"the tiling's grid {tiling.grid} is not the grid {gh}x{gw}")
    tiling.check()
    image_pos, prompt_pos, gen_pos = (torch.as_tensor(p, dtype=torch.long).reshape(-1)
                                      for p in (image_pos, prompt_pos, gen_pos))
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    _check_inputs(hidden, lm_head_weight, ids, image_pos, tiling, prompt_pos, gen_pos)
    n, p, t = image_pos.numel(), prompt_pos.numel(), gen_pos.numel()
    if t == 0:
        return _empty(gh, gw, p)
    if reference is not None:
        from precompute import tam_reference

        if not 0 <= reference.n_prompt <= len(reference.strings):
            raise ValueError(f"n_prompt {reference.n_prompt} is not within the {len(reference.strings)} strings")
        return tam_reference.compute(hidden, lm_head_weight, lm_head_bias, ids, image_pos, tiling, prompt_pos,
                                     gen_pos, reference)

    # Context items: prompt text then generated tokens. Their classes and relevance positions.
    item_pos = torch.cat([prompt_pos, gen_pos])  # (K,) where each item's token sits
    item_ids = ids[item_pos]  # (K,)
    rel_pos = torch.cat([prompt_pos, gen_pos - 1])  # (K,) where its relevance is read
    classes, item_class = torch.unique(item_ids, return_inverse=True)  # (C,), (K,)

    # Step 1: only the needed LM-head rows; logits at image and relevance positions.
    # float32 (bf16/fp16 models are read out in float32); float64 stays float64, which makes the
    # embedded smoke dataset identical on every CPU (docs/tam.md)
    work = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    # the head may sit on another device than the states (--device-map): its rows go to the states
    rows = lm_head_weight.index_select(0, classes.to(lm_head_weight.device)).to(hidden.device, work)  # (C, D)
    bias = (lm_head_bias.index_select(0, classes.to(lm_head_bias.device)).to(hidden.device, work)
            if lm_head_bias is not None else 0)
    h_img = hidden.index_select(0, image_pos.to(hidden.device)).to(work)  # (N, D)
    h_rel = hidden.index_select(0, rel_pos.to(hidden.device)).to(work)  # (K, D)
    img_logits = (h_img @ rows.T + bias).clamp_min(0).cpu()  # (N, C)
    rel_logits = (h_rel @ rows.T + bias).clamp_min(0).cpu()  # (K, C)

    maps_all = img_logits[:, item_class].T  # (K, N) raw map of every context item
    gen_class = item_class[p:]  # (T,) class index of each generated token
    m = maps_all[p:]  # (T, N) raw map of each explained token
    r = rel_logits[:, gen_class].T  # (T, K): relevance of item k for token t's class

    # Step 2: ECI. Earlier items only (k < P + t), repeated tokens excluded from the weights.
    k_idx = torch.arange(p + t)
    earlier = k_idx[None, :] < (p + torch.arange(t))[:, None]  # (T, K)
    distinct = item_ids[None, :] != item_ids[p:, None]  # (T, K)
    kept = earlier & distinct
    w = torch.where(kept, r, torch.zeros_like(r))
    w = w / (w.sum(-1, keepdim=True) + EPS_WEIGHT)  # (T, K)
    interference = w @ maps_all  # (T, N)
    ii = (interference * interference).sum(-1)  # (T,)
    scale = torch.where(ii > 0, (m * interference).sum(-1) / ii.clamp_min(torch.finfo(ii.dtype).tiny),
                        torch.zeros_like(ii))
    has_context = kept.any(-1)
    scale = torch.where(has_context, scale, torch.zeros_like(scale))
    eci = (m - scale[:, None] * interference).clamp_min(0)  # (T, N)

    # Step 3: joint min-max with the text relevance of all earlier items (repeats included).
    rel_earlier = torch.where(earlier, r, torch.full_like(r, float("nan")))
    lo = torch.minimum(eci.min(-1).values, _nanmin(rel_earlier))  # (T,)
    hi = torch.maximum(eci.max(-1).values, _nanmax(rel_earlier))
    span = hi - lo
    norm = torch.where(span[:, None] > EPS_RANGE, (eci - lo[:, None]) / span.clamp_min(EPS_RANGE)[:, None],
                       torch.zeros_like(eci))

    # Step 4: rank Gaussian filter on each grid, placed on the composite grid, then 8 bits.
    filtered = per_tile(norm, tiling, rank_gaussian_filter).clamp(0, 1)  # (T, gh, gw)
    maps_u8 = torch.floor(filtered * 255).to(torch.uint8)

    text_rel = torch.where(earlier, r, torch.zeros_like(r))
    assert eci.shape == (t, n)
    return TamResult(
        raw=per_tile(eci, tiling).numpy().astype(np.float32),
        lo=lo.numpy().astype(np.float32),
        hi=hi.numpy().astype(np.float32),
        maps=filtered.numpy().astype(np.float32),
        maps_u8=maps_u8.numpy(),
        text_relevance=text_rel.numpy().astype(np.float32),
        interference_scale=scale.numpy().astype(np.float32),
        class_ids=item_ids[p:].numpy(),
        nan_cells=np.zeros(t, np.int32),
        undefined=np.zeros(t, bool),
    )


def _nanmin(x: torch.Tensor) -> torch.Tensor:
    """Row-wise min ignoring NaN; +inf for an all-NaN row (so it never wins a minimum)."""
    return torch.where(torch.isnan(x), torch.full_like(x, float("inf")), x).min(-1).values


def _nanmax(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), torch.full_like(x, float("-inf")), x).max(-1).values


def _empty(gh: int, gw: int, p: int) -> TamResult:
    z = np.zeros
    return TamResult(z((0, gh, gw), np.float32), z(0, np.float32), z(0, np.float32), z((0, gh, gw), np.float32),
                     z((0, gh, gw), np.uint8), z((0, p), np.float32), z(0, np.float32), z(0, np.int64),
                     z(0, np.int32), z(0, bool))


def _check_inputs(hidden, weight, ids, image_pos, tiling: Tiling, prompt_pos, gen_pos) -> None:
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden (S, D) and lm_head_weight (V, D) disagree: {tuple(hidden.shape)}, "
                         f"{tuple(weight.shape)}")
    s = hidden.shape[0]
    if ids.numel() != s:
        raise ValueError(f"ids has {ids.numel()} entries for {s} hidden states")
    gh, gw = tiling.grid
    if tiling.n_tokens != image_pos.numel():
        grids = f"grid {gh}x{gw}" if len(tiling.tiles) == 1 else f"{len(tiling.tiles)} grids"
        raise ValueError(f"{grids} do not hold the {image_pos.numel()} image tokens")
    for name, pos in (("image_pos", image_pos), ("prompt_pos", prompt_pos), ("gen_pos", gen_pos)):
        if pos.numel() and (pos.min() < 0 or pos.max() >= s):
            raise ValueError(f"{name} points outside the sequence of {s} tokens")
    if gen_pos.numel() and gen_pos.min() < 1:
        raise ValueError("a generated token needs a position before it")
