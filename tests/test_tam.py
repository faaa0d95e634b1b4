"""The TAM engine against a plain-loop implementation of the published algorithm.

`reference_tam` below is written from the paper's description and the authors' code, as
loops over tokens and grid cells (full-vocabulary logits at every position, a Python loop for
the rank filter), with the departures the engine documents (token 0 gets its own map; zero
ranges and constant windows defined instead of NaN). The engine must agree to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.tam import compute_tam, rank_gaussian_filter

torch.set_num_threads(1)


# --- the plain-loop reference ---------------------------------------------------------------
def reference_filter(img: np.ndarray) -> np.ndarray:
    """3x3 rank Gaussian filter, one window at a time (np.pad reflect, like the authors)."""
    out = np.zeros_like(img)
    padded = np.pad(img, 1, mode="reflect") if min(img.shape) > 1 else _pad_small(img)
    ax = np.arange(9) - 4
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            window = np.sort(padded[i:i + 3, j:j + 3].flatten())
            mean = window.mean()
            if mean <= 0:
                value = 0.0
            else:
                sigma = window.std() / mean
                if sigma == 0:
                    value = window[4]  # the limit of the Gaussian as its width goes to 0
                else:
                    kernel = np.exp(-(ax**2) / (2 * sigma**2))
                    value = (window * (kernel / kernel.sum())).sum()
            out[i, j] = value
    return out


def _pad_small(img: np.ndarray) -> np.ndarray:
    # np.pad 'reflect' on a length-1 axis repeats the value; do each axis as numpy would
    for axis in range(2):
        mode = "reflect" if img.shape[axis] > 1 else "edge"
        widths = [(1, 1) if a == axis else (0, 0) for a in range(2)]
        img = np.pad(img, widths, mode=mode)
    return img


def reference_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, bias=None, dtype=np.float64):
    hidden, weight = np.asarray(hidden, dtype), np.asarray(weight, dtype)
    logits = hidden @ weight.T  # (S, V): every class at every position, as the authors do
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
        filtered = np.clip(reference_filter(norm.reshape(grid)), 0, 1)
        out.append(dict(raw=eci.reshape(grid), lo=lo, hi=hi, maps=filtered, scale=scale,
                        u8=(filtered * 255).astype(np.uint8), relevance=relevance))
    return out


# --- helpers ---------------------------------------------------------------------------------
def make_inputs(seed, grid=(4, 5), d=16, v=50, p=4, t=6, ids_gen=None, prompt_ids=None):
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1]
    pre, post = 3, 2  # template tokens before the image and between prompt and answer
    s = pre + n + 1 + p + post + t
    hidden = torch.randn(s, d, generator=g)
    weight = torch.randn(v, d, generator=g)
    ids = torch.randint(0, v, (s,), generator=g)
    image_pos = torch.arange(pre, pre + n)
    prompt_pos = torch.arange(pre + n + 1, pre + n + 1 + p)
    gen_pos = torch.arange(s - t, s)
    if prompt_ids is not None:
        ids[prompt_pos] = torch.tensor(prompt_ids)
    if ids_gen is not None:
        ids[gen_pos] = torch.tensor(ids_gen)
    return hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos


def assert_agrees(inputs, bias=None):
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
    got = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, lm_head_bias=bias)
    want = reference_tam(hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(), grid,
                         prompt_pos.tolist(), gen_pos.tolist(), None if bias is None else bias.numpy())
    assert got.maps.shape == (len(want), *grid)
    for t, ref in enumerate(want):
        np.testing.assert_allclose(got.raw[t], ref["raw"], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose([got.lo[t], got.hi[t]], [ref["lo"], ref["hi"]], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(got.maps[t], ref["maps"], atol=1e-5)
        np.testing.assert_allclose(got.interference_scale[t], ref["scale"], atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(got.text_relevance[t, :len(ref["relevance"])], ref["relevance"],
                                   atol=1e-5, rtol=1e-5)
        # 8 bits agree except where the float sits on a k/255 boundary within float error
        boundary = np.abs(ref["maps"] * 255 - np.round(ref["maps"] * 255)) < 1e-3
        assert np.array_equal(got.maps_u8[t][~boundary], ref["u8"][~boundary])
        for arr in (got.raw, got.maps, got.lo, got.hi):
            assert np.isfinite(arr).all()
    return got


# --- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_random_inputs(seed):
    rng = np.random.default_rng(seed)
    grid = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    assert_agrees(make_inputs(seed, grid=grid, d=int(rng.integers(4, 32)), v=int(rng.integers(20, 300)),
                              p=int(rng.integers(0, 6)), t=int(rng.integers(1, 9))))


def test_with_bias():
    inputs = make_inputs(1)
    assert_agrees(inputs, bias=torch.randn(inputs[1].shape[0], generator=torch.Generator().manual_seed(9)))


def test_repeated_words_are_excluded_from_interference():
    # the same token generated several times, and a generated token equal to a prompt token
    got = assert_agrees(make_inputs(2, p=3, t=6, prompt_ids=[7, 8, 9], ids_gen=[5, 5, 7, 5, 7, 5]))
    assert np.isfinite(got.maps).all()


def test_all_earlier_items_repeat_gives_no_interference():
    got = assert_agrees(make_inputs(3, p=2, t=3, prompt_ids=[4, 4], ids_gen=[4, 4, 4]))
    assert (got.interference_scale == 0).all()


def test_constant_maps():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(4)
    hidden[image_pos] = hidden[image_pos[0]].clone()  # every image position the same -> constant maps
    got = assert_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos))
    for t in range(got.maps.shape[0]):
        assert np.ptp(got.maps[t]) < 1e-6


def test_one_token_and_no_prompt():
    got = assert_agrees(make_inputs(5, p=0, t=1))
    assert got.interference_scale.tolist() == [0.0]
    assert_agrees(make_inputs(6, p=3, t=1))


@pytest.mark.parametrize("grid", [(1, 7), (7, 1), (1, 1), (2, 1)])
def test_thin_grids(grid):
    assert_agrees(make_inputs(7, grid=grid))


def test_all_zero_relevance_and_zero_maps():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(8)
    # negative logits everywhere: every map and every relevance clips to 0, range 0
    hidden[:] = 0
    got = assert_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos),
                        bias=-torch.ones(weight.shape[0]))
    assert (got.maps == 0).all() and (got.maps_u8 == 0).all()


def test_filter_constant_window_returns_constant():
    x = torch.full((1, 3, 4), 0.37)
    np.testing.assert_allclose(rank_gaussian_filter(x).numpy(), 0.37, atol=1e-7)
    assert torch.isfinite(rank_gaussian_filter(torch.zeros(2, 1, 1))).all()


def test_only_needed_lm_head_rows_are_read():
    """A huge vocabulary whose unused rows are NaN: reading them anywhere would poison the maps."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(10, v=50)
    big = torch.full((200_000, weight.shape[1]), float("nan"))
    used = torch.unique(torch.cat([ids[prompt_pos], ids[gen_pos]]))
    big[used] = weight[used]
    got = compute_tam(hidden, big, ids, image_pos, grid, prompt_pos, gen_pos)
    want = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos)
    assert np.isfinite(got.maps).all()
    np.testing.assert_array_equal(got.maps_u8, want.maps_u8)


def test_bad_inputs_raise_clear_errors():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(11)
    with pytest.raises(ValueError, match="grid"):
        compute_tam(hidden, weight, ids, image_pos, (3, 3), prompt_pos, gen_pos)
    with pytest.raises(ValueError, match="disagree"):
        compute_tam(hidden, weight[:, :3], ids, image_pos, grid, prompt_pos, gen_pos)
    with pytest.raises(ValueError, match="outside"):
        compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos + 100)
    empty = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos[:0])
    assert empty.maps.shape == (0, *grid) and empty.text_relevance.shape == (0, len(prompt_pos))


def test_float64_inputs_are_computed_in_float64():
    """float64 states (the smoke dataset's tiny models) keep float64 precision through the engine."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(12)
    got = compute_tam(hidden.double(), weight.double(), ids, image_pos, grid, prompt_pos, gen_pos)
    want = reference_tam(hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(), grid,
                         prompt_pos.tolist(), gen_pos.tolist())  # float64 loops
    for t, ref in enumerate(want):
        np.testing.assert_allclose(got.raw[t], ref["raw"].astype(np.float32), rtol=1e-7, atol=1e-7)
        np.testing.assert_array_equal(got.maps_u8[t], ref["u8"])
