"""The `reference` TAM variant: the authors' maps (xmed-lab/TAM `tam.py`), vectorised.

What their code computes is stated in ../shared/reference/tam-reference-behaviour.md (and
docs/tam.md); this module reproduces it on the same hidden states, quirks included:

- Their list of explained items: the P re-tokenised prompt words (item 0's class is the argmax
  of the LM head at the first prompt position, the others their own ids), then the prompt's
  last token `\\n` at position L-1 with its own class (the item that stands for generated token
  0), then generated tokens 1..T-1. Generated token 0's map is item 0's: the first prompt
  word's map. Round r >= 1 explains item P + r.
- Text scores of round r: its class read at the prompt-text positions, at L-1 and at the
  positions that predicted generated tokens 1..r (`rel_pos`), clipped at 0.
- ECI of round r runs when P + r < len(strings): context = items i < P + r whose re-tokenised
  string differs from string P + r; w = score / (sum + 1e-8) over them, interference I = sum
  w_i map_i, least-squares scale s, eci = relu(map - s I).
- Normalisation: joint min-max over [eci; text scores without the last], no epsilon, in
  float32; the rank filter with their float32 / float64 arithmetic (numpy's order of addition
  for the 9 window values), so a constant positive window gives NaN exactly where theirs does;
  8 bits by truncation. A NaN cell (0/0 in the normalisation or the filter) is stored as 0, which
  is what their uint8 cast stores, and counted in `nan_cells`.

Where their code is undefined (it raises), the map is still computed and the token flagged in
`undefined`: an ECI whose context is empty (every earlier string equals the current one:
`np.stack([])`) runs no ECI; context items with no text score (more re-tokenised prompt words
than prompt ids: `IndexError`) are left out. Round 0 is undefined when one of the prompt
explanations their code runs first (t = 1..P) would raise.

Arithmetic: logits in the hidden states' dtype (what their `lm_head` returns, e.g. bf16) then
float32, as their `.float().numpy()`; ECI sums accumulated in float64 and rounded to float32
where their code holds float32 arrays (they add in float32 and find s with
`scipy.optimize.minimize_scalar`: both agree with ours to about 1e-7, docs/tam.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from precompute.tam import FILTER_CHUNK, TamResult, sorted_windows
from precompute.tiling import Tiling, per_tile

EPS_WEIGHT = 1e-8  # their w = scores / (scores.sum() + 1e-8)


@dataclass(frozen=True)
class ReferenceInputs:
    """What the authors' code takes from the tokenizer and the full LM head (computed by describe).

    strings: `tokenizer.tokenize(decode(prompt ids))` + `tokenizer.tokenize(decode(answer ids))`,
    their `txt_all` (the answer with its end token when one was generated); n_prompt: how many
    of them are the prompt's; first_prompt_class: the argmax class at the first prompt position
    (`first_prompt_class`), ignored when n_prompt is 0.
    """

    strings: tuple[str, ...]
    n_prompt: int
    first_prompt_class: int | None


def first_prompt_class(hidden_row: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> int:
    """argmax over the vocabulary of the LM head at one position (D,), in the model's dtype as
    their logits are: the class of their first prompt item (the guess of the word after it)."""
    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden_row.to(weight.device, weight.dtype), weight, bias)  # (V,)
    return int(logits.argmax())


def lm_head_scores(hidden: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(M, D) states, (C, D) head rows -> (M, C) float32 logits clipped at 0, computed in the
    states' dtype as the model's LM head computes them, then float32 (their `.float()`)."""
    logits = torch.nn.functional.linear(hidden, rows.to(hidden.device, hidden.dtype),
                                        None if bias is None else bias.to(hidden.device, hidden.dtype))
    return logits.float().clamp_min(0).cpu()


def string_codes(strings: tuple[str, ...]) -> torch.Tensor:
    """(len,) int64: equal strings get equal codes (the repeat rule compares strings)."""
    seen: dict[str, int] = {}
    return torch.tensor([seen.setdefault(s, len(seen)) for s in strings], dtype=torch.long)


def context(ref: ReferenceInputs, p_ids: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which items enter the ECI of each round, and which rounds their code cannot compute.

    Returns use (T, K) bool over the K = P + T items, undefined (T,) bool."""
    codes = string_codes(ref.strings)
    p, n_str, k = ref.n_prompt, len(ref.strings), ref.n_prompt + t
    r = torch.arange(t)
    current = p + r  # (T,) the item (and string) explained at round r >= 1
    active = (r >= 1) & (current < n_str)  # their `len(list) > 1 and vis_token_idx < len(txt_all)`
    padded = torch.cat([codes, torch.full((max(k - n_str, 0) + 1,), -1)])  # -1: no string there
    item = torch.arange(k)
    kept = active[:, None] & (item[None, :] < current[:, None]) & (padded[None, :k] != padded[current][:, None])
    has_score = item[None, :] <= (p_ids + r)[:, None]  # their txt_scores has P_ids + 1 + r entries
    use = kept & has_score
    undefined = active & (~kept.any(-1) | (kept & ~has_score).any(-1))
    if t:
        undefined[0] = prompt_rounds_undefined(codes, p, p_ids)
    return use, undefined


def prompt_rounds_undefined(codes: torch.Tensor, p: int, p_ids: int) -> bool:
    """Would one of the prompt explanations t = 1..P of their round 0 raise?"""
    tt = torch.arange(1, p + 1)
    tt = tt[tt < len(codes)]  # ECI runs for t < len(txt_all)
    if not len(tt):
        return False
    i = torch.arange(p)
    padded = torch.cat([codes, torch.full((1,), -1)])
    kept = (i[None, :] < tt[:, None]) & (padded[None, i] != padded[tt][:, None])  # (len(tt), P)
    return bool((~kept.any(-1)).any() or (kept & (i[None, :] > p_ids)).any())


def eci(m: torch.Tensor, maps_all: torch.Tensor, scores: torch.Tensor, use: torch.Tensor):
    """m (T, N), maps_all (K, N), scores (T, R) float32, use (T, K) -> (eci (T, N) float32, s (T,) float32)."""
    k = maps_all.shape[0]
    s_k = scores[:, :k] if scores.shape[1] >= k else torch.nn.functional.pad(scores, (0, k - scores.shape[1]))
    w = torch.where(use, s_k.double(), torch.zeros((), dtype=torch.float64))
    w = w / (w.sum(-1, keepdim=True) + EPS_WEIGHT)  # (T, K)
    interference = (w @ maps_all.double()).float()  # (T, N) float32, as their interference map
    i64 = interference.double()
    ii = (i64 * i64).sum(-1)
    s = torch.where(ii > 0, (m.double() * i64).sum(-1) / ii.clamp_min(torch.finfo(ii.dtype).tiny),
                    torch.zeros_like(ii))
    has_context = use.any(-1)
    s = torch.where(has_context, s, torch.zeros_like(s)).float()  # their scalar meets float32 arrays
    out = torch.where(has_context[:, None], (m - interference * s[:, None]).clamp_min(0), m)
    return out, s


def _sum9(x) -> torch.Tensor:
    """x[0] + ... + x[8] (9 tensors, or a tensor with 9 rows) in numpy's pairwise order for 9 values."""
    return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])) + x[8]


def rank_filter_as_numpy(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) float32 -> (B, H, W) float32: their rank Gaussian filter with their arithmetic.

    Per 3x3 window (np.pad reflect): the sorted values' float32 mean and population std in
    numpy's order, sigma = std / mean, weights exp(-a^2 / (2 sigma^2)) in float64 over ranks
    a = -4..4, normalised, the weighted sum in float64 stored as float32; 0 where the mean is not
    positive. NaN where their code gives NaN (2 sigma^2 == 0: a constant positive window)."""
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], FILTER_CHUNK):
        ranked = sorted_windows(x[start:start + FILTER_CHUNK])  # 9 x (b, H, W) float32, ascending
        mean = _sum9(ranked) / 9
        std = (_sum9([d * d for d in (r - mean for r in ranked)]) / 9).sqrt()
        sigma = std / mean
        width = (2 * (sigma * sigma)).double()  # their 2 * sigma**2, 0 for a constant window -> 0/0 below
        # the weights of ranks a = -4..4 take 5 values (a^2 = 16, 9, 4, 1, 0), each exp(-a^2 / width)
        e16, e9, e4, e1, e0 = (torch.exp(width.new_tensor(-a2) / width) for a2 in (16.0, 9.0, 4.0, 1.0, 0.0))
        total = _sum9((e16, e9, e4, e1, e0, e1, e4, e9, e16))
        k16, k9, k4, k1, k0 = (e / total for e in (e16, e9, e4, e1, e0))
        weights = (k16, k9, k4, k1, k0, k1, k4, k9, k16)
        value = _sum9([r.double() * k for r, k in zip(ranked, weights, strict=True)]).float()
        out[start:start + FILTER_CHUNK] = torch.where(mean > 0, value, torch.zeros_like(value))
    return out


def compute(hidden, weight, bias, ids, image_pos, tiling: Tiling, prompt_pos, gen_pos, ref: ReferenceInputs) -> TamResult:
    """The reference variant; inputs checked by precompute.tam.compute_tam. Several grids
    (`tiling`) as their multi-image path: ECI and normalisation over all image tokens, the
    filter per grid (precompute.tiling)."""
    p_ids, t, p = prompt_pos.numel(), gen_pos.numel(), ref.n_prompt
    if p and (p_ids == 0 or ref.first_prompt_class is None):
        raise ValueError("re-tokenised prompt words without prompt ids or without first_prompt_class")
    newline = gen_pos[:1] - 1  # (1,) position L-1, the token that ends the prompt
    prompt_items = prompt_pos[:1] + torch.arange(p)  # their position prompt_start + t for item t < P
    if p and prompt_items[-1] >= hidden.shape[0]:
        raise ValueError(f"{p} re-tokenised prompt words run past the sequence")
    item_ids = torch.cat([ids[prompt_items], ids[newline], ids[gen_pos[1:]]])  # (K,) K = P + T
    if p:
        item_ids[0] = ref.first_prompt_class
    explained = torch.cat([torch.zeros(1, dtype=torch.long), p + torch.arange(1, t)])  # (T,) item of round r
    rel_pos = torch.cat([prompt_pos, gen_pos - 1])  # (P_ids + T,) where text scores are read

    classes, item_class = torch.unique(item_ids, return_inverse=True)  # (C,), (K,)
    rows = weight.index_select(0, classes.to(weight.device))  # (C, D)
    b = bias.index_select(0, classes.to(bias.device)) if bias is not None else None
    img = lm_head_scores(hidden.index_select(0, image_pos.to(hidden.device)), rows, b)  # (N, C)
    rel = lm_head_scores(hidden.index_select(0, rel_pos.to(hidden.device)), rows, b)  # (P_ids + T, C)

    maps_all = img[:, item_class].T.contiguous()  # (K, N) raw map of every item
    round_class = item_class[explained]  # (T,)
    m = maps_all[explained]  # (T, N)
    scores = rel[:, round_class].T  # (T, P_ids + T): round r's class at every relevance position
    use, undefined = context(ref, p_ids, t)
    eci_maps, scale = eci(m, maps_all, scores, use)

    # normalisation: text scores without the last one of the round (its own predicting position)
    text_part = torch.arange(p_ids + t)[None, :] < (p_ids + torch.arange(t))[:, None]  # (T, P_ids + T)
    lo = torch.minimum(eci_maps.min(-1).values,
                       torch.where(text_part, scores, torch.full_like(scores, float("inf"))).min(-1).values)
    hi = torch.maximum(eci_maps.max(-1).values,
                       torch.where(text_part, scores, torch.full_like(scores, float("-inf"))).max(-1).values)
    norm = (eci_maps - lo[:, None]) / (hi - lo)[:, None]  # float32, no epsilon: 0/0 = NaN on a zero range

    filtered = per_tile(norm, tiling, rank_filter_as_numpy)  # (T, gh, gw)
    nan = torch.isnan(per_tile(norm, tiling)) | torch.isnan(filtered)
    maps = torch.where(nan, torch.zeros_like(filtered), filtered)  # their uint8 cast stores 0 for NaN
    return TamResult(
        raw=per_tile(eci_maps, tiling).numpy(),
        lo=lo.numpy(),
        hi=hi.numpy(),
        maps=maps.numpy(),
        maps_u8=(maps * 255).to(torch.uint8).numpy(),  # float32 product, truncated like astype(uint8)
        text_relevance=torch.where(text_part, scores, torch.zeros_like(scores)).numpy(),
        interference_scale=scale.numpy(),
        class_ids=classes[round_class].numpy(),
        nan_cells=nan.reshape(t, -1).sum(-1).to(torch.int32).numpy(),
        undefined=undefined.numpy(),
    )
