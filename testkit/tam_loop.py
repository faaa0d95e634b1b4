"""Plain-loop TAM, both variants, to check the vectorised engine (precompute/tam*.py) against.

Both read full-vocabulary logits at every position and loop over tokens and grid cells in
Python, sharing nothing with the engine.

`reference_loop` is written from ../shared/reference/tam-reference-behaviour.md, the facts of
the authors' code: its explained items and classes per round (round 0 runs the prompt
explanations t = 0..P and returns t = 0's map), its text scores, ECI with the repeat rule on
the re-tokenised strings, normalisation without epsilon and the rank filter in their float32
numpy arithmetic (NaN stored as 0, as their uint8 cast does). Their float32 ECI sums and
`minimize_scalar` are replaced by float64 sums and the closed-form scale (the argmin they
compute), rounded to float32 where their arrays are float32; where their code raises, the
fallback docs/tam.md defines (out-of-range items dropped, no ECI without context).

`corrected_loop` is the corrected variant: token 0 gets its own map, repetition on ids, the
median for constant windows and a zero map for a zero range.
"""

from __future__ import annotations

import numpy as np

RANKS = np.arange(9) - 4  # rank offsets of the sorted 3x3 window


def sorted_windows(img: np.ndarray):
    """(i, j, the 9 values of the 3x3 window around cell (i, j) sorted ascending), np.pad reflect."""
    padded = np.pad(img, 1, mode="reflect")
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            yield i, j, np.sort(padded[i:i + 3, j:j + 3].flatten())


# --- reference variant -------------------------------------------------------------------------
def authors_rank_filter(img: np.ndarray) -> np.ndarray:
    """Their rank Gaussian filter, one window at a time, in their dtypes (float32 in and out)."""
    out = np.zeros_like(img)
    for i, j, window in sorted_windows(img):
        mean = window.mean()
        if not mean > 0:  # also a NaN window (zero range)
            continue
        sigma = window.std() / mean
        with np.errstate(invalid="ignore", divide="ignore"):  # constant window: sigma 0 -> NaN
            weights = np.exp(-(RANKS**2) / (2 * sigma**2))
            weights = weights / weights.sum()
        out[i, j] = (window * weights).sum()
    return out


def reference_loop(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, strings, n_prompt, bias=None):
    """The authors' maps for generated tokens 0..T-1. hidden (S, D) and weight (V, D) torch tensors in
    the model's dtype; strings: their txt_all (re-tokenised prompt + answer); n_prompt: len(prompt).
    grid: (h, w); or, as their multi-image path takes `vision_shape`, a list of (h, w), one per
    image, the image tokens filling them one after the other: then raw, maps and u8 are lists of
    per-image arrays (ECI and normalisation over all image tokens, the filter per image)."""
    import torch

    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden, weight, bias)  # (S, V), what their lm_head returns
    scores = np.maximum(logits.float().numpy(), 0)  # their .float().numpy(), clipped at 0
    ids, image_pos = [int(x) for x in ids], [int(x) for x in image_pos]
    prompt_pos, gen_pos = [int(x) for x in prompt_pos], [int(x) for x in gen_pos]
    first_gen = gen_pos[0]  # L, the prefill length
    explained_maps: list[np.ndarray] = []  # their list of raw image maps, one per explained item

    def explain(index: int, cls: int, rnd: int) -> dict:
        img = scores[image_pos, cls]  # (N,) float32
        # prompt positions, then L-1, then the positions L .. L+rnd-1
        text = scores[prompt_pos + [first_gen - 1] + [first_gen + j for j in range(rnd)], cls]
        explained_maps.append(img)
        scale, undefined = 0.0, False
        if len(explained_maps) > 1 and index < len(strings):
            kept = [i for i in range(index) if strings[i] != strings[index]]
            usable = [i for i in kept if i < len(text)]
            undefined = not kept or len(usable) < len(kept)
            if usable:
                w = np.array([float(text[i]) for i in usable])
                w = w / (w.sum() + 1e-8)
                interference = np.zeros(len(img))
                for wi, i in zip(w, usable, strict=True):
                    interference += wi * explained_maps[i].astype(np.float64)
                interference = interference.astype(np.float32)
                i64 = interference.astype(np.float64)
                denom = float(i64 @ i64)
                scale = float(img.astype(np.float64) @ i64) / denom if denom > 0 else 0.0
                img = np.maximum(img - interference * np.float32(scale), np.float32(0))
        relevance = text[:-1]  # without the token's own predicting position
        values = np.concatenate([img, relevance])
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = (img - values.min()) / (values.max() - values.min())  # 0/0 on a zero range
        if isinstance(grid, list):  # their multi-image branch: one filter per image, in token order
            raws, all_maps, nan_cells, start = [], [], 0, 0
            for h, w in grid:
                part = norm[start:start + h * w].reshape(h, w)
                raws.append(img[start:start + h * w].reshape(h, w))
                start += h * w
                filtered = authors_rank_filter(part)
                nan = np.isnan(part) | np.isnan(filtered)
                all_maps.append(np.where(nan, np.float32(0), filtered))
                nan_cells += int(nan.sum())
            return dict(raw=raws, lo=values.min(), hi=values.max(), maps=all_maps,
                        u8=[(m * 255).astype(np.uint8) for m in all_maps], scale=np.float32(scale),
                        relevance=relevance, cls=cls, nan_cells=nan_cells, undefined=undefined)
        filtered = authors_rank_filter(norm.reshape(grid))
        nan = np.isnan(norm.reshape(grid)) | np.isnan(filtered)
        maps = np.where(nan, np.float32(0), filtered)  # their uint8 cast stores 0 for NaN
        return dict(raw=img.reshape(grid), lo=values.min(), hi=values.max(), maps=maps,
                    u8=(maps * 255).astype(np.uint8), scale=np.float32(scale), relevance=relevance, cls=cls,
                    nan_cells=int(nan.sum()), undefined=undefined)

    out = []
    # round 0: the prompt explanations t = 0..P in order; the map of t = 0 is returned
    undefined = False
    for t in range(n_prompt + 1):
        if t == n_prompt:
            cls = ids[first_gen - 1]  # the prompt's last token, "\n"
        elif t == 0:
            cls = int(logits[prompt_pos[0]].argmax())  # the model's guess of the next word
        else:
            cls = ids[prompt_pos[0] + t]
        result = explain(t, cls, 0)
        undefined |= result["undefined"]
        if t == 0:
            out.append(result)
    out[0]["undefined"] = undefined
    for rnd in range(1, len(gen_pos)):
        out.append(explain(n_prompt + rnd, ids[gen_pos[rnd]], rnd))
    return out


# --- corrected variant -------------------------------------------------------------------------
def corrected_rank_filter(img: np.ndarray) -> np.ndarray:
    """3x3 rank Gaussian filter, one window at a time; a constant window gives its median."""
    out = np.zeros_like(img)
    for i, j, window in sorted_windows(img):
        mean = window.mean()
        if mean <= 0:
            continue
        sigma = window.std() / mean
        if sigma == 0:
            out[i, j] = window[4]  # the limit of the Gaussian as its width goes to 0
        else:
            kernel = np.exp(-(RANKS**2) / (2 * sigma**2))
            out[i, j] = (window * (kernel / kernel.sum())).sum()
    return out


def corrected_loop(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, bias=None, dtype=np.float64):
    """The corrected maps. hidden (S, D), weight (V, D) as numpy arrays; computed in `dtype`.
    grid: (h, w) or a list of them (several images, as reference_loop)."""
    hidden, weight = np.asarray(hidden, dtype), np.asarray(weight, dtype)
    logits = hidden @ weight.T  # (S, V): every class at every position
    if bias is not None:
        logits = logits + np.asarray(bias, dtype)
    logits = np.maximum(logits, 0)
    ids = list(np.asarray(ids))
    items = list(prompt_pos) + list(gen_pos)  # context items: prompt text, then generated
    rel_positions = list(prompt_pos) + [g - 1 for g in gen_pos]
    item_maps = [logits[list(image_pos), ids[pos]] for pos in items]
    p = len(prompt_pos)
    out = []
    for t, pos in enumerate(gen_pos):
        c = ids[pos]
        m = item_maps[p + t]
        relevance = [logits[rel_positions[k], c] for k in range(p + t)]
        kept = [k for k in range(p + t) if ids[items[k]] != c]
        eci, scale = m, 0.0
        if kept:
            w = np.array([relevance[k] for k in kept])
            w = w / (w.sum() + 1e-8)
            interference = sum(wk * item_maps[k] for wk, k in zip(w, kept, strict=True))
            denom = (interference * interference).sum()
            scale = (m * interference).sum() / denom if denom > 0 else 0.0
            eci = np.maximum(m - scale * interference, 0)
        values = np.concatenate([eci, relevance])
        lo, hi = values.min(), values.max()
        norm = (eci - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(eci)
        if isinstance(grid, list):  # several images (reference_loop): one filter per image
            parts, start = [], 0
            for h, w in grid:
                parts.append((eci[start:start + h * w].reshape(h, w), norm[start:start + h * w].reshape(h, w)))
                start += h * w
            filtered = [np.clip(corrected_rank_filter(n), 0, 1) for _, n in parts]
            out.append(dict(raw=[r for r, _ in parts], lo=lo, hi=hi, maps=filtered, scale=scale,
                            u8=[(f * 255).astype(np.uint8) for f in filtered], relevance=relevance))
            continue
        filtered = np.clip(corrected_rank_filter(norm.reshape(grid)), 0, 1)
        out.append(dict(raw=eci.reshape(grid), lo=lo, hi=hi, maps=filtered, scale=scale,
                        u8=(filtered * 255).astype(np.uint8), relevance=relevance))
    return out
