"""The TAM engine against plain-loop implementations of both variants (testkit/tam_loop.py).

`reference_loop` follows the facts of the authors' code (tam-reference-behaviour.md) with
full-vocabulary logits and Python loops; `corrected_loop` the corrected variant. On float64
inputs the engine must give the same 8-bit maps, bit for bit, and the same raw maps; on float32
inputs the corrected variant agrees to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.tam import SORT9, compute_tam, rank_gaussian_filter, sorted_windows
from precompute.tam_reference import ReferenceInputs, first_prompt_class
from testkit.tam_loop import corrected_loop, reference_loop

torch.set_num_threads(1)


# --- helpers ---------------------------------------------------------------------------------
def make_inputs(seed, grid=(4, 5), d=16, v=50, p=4, t=6, ids_gen=None, prompt_ids=None, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1]
    pre, post = 3, 2  # template tokens before the image and between prompt and answer
    s = pre + n + 1 + p + post + t
    hidden = torch.randn(s, d, generator=g).to(dtype)
    weight = torch.randn(v, d, generator=g).to(dtype)
    ids = torch.randint(0, v, (s,), generator=g)
    image_pos = torch.arange(pre, pre + n)
    prompt_pos = torch.arange(pre + n + 1, pre + n + 1 + p)
    gen_pos = torch.arange(s - t, s)
    if prompt_ids is not None:
        ids[prompt_pos] = torch.tensor(prompt_ids)
    if ids_gen is not None:
        ids[gen_pos] = torch.tensor(ids_gen)
    return hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos


def id_strings(ids, prompt_pos, gen_pos):
    """Re-tokenised strings that line up with the ids (what a real BPE usually gives)."""
    return tuple(f"w{int(i)}" for i in ids[prompt_pos]) + tuple(f"w{int(i)}" for i in ids[gen_pos])


def assert_corrected_agrees(inputs, bias=None):
    """float32: within 1e-5 (8 bits equal off k/255 boundaries); float64: the same 8 bits."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
    got = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, lm_head_bias=bias)
    want = corrected_loop(hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(), grid,
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
    exact = compute_tam(hidden.double(), weight.double(), ids, image_pos, grid, prompt_pos, gen_pos,
                        lm_head_bias=None if bias is None else bias.double())
    np.testing.assert_array_equal(exact.maps_u8, np.stack([ref["u8"] for ref in want]))
    assert got.class_ids.tolist() == ids[gen_pos].tolist() and not got.nan_cells.any() and not got.undefined.any()
    return got


def assert_reference_agrees(inputs, strings=None, n_prompt=None, bias=None):
    """The same 8-bit maps, raw maps, ranges, classes and flags as the loop, bit for bit. The filtered
    floats agree to 1e-6: the loop squares sigma with libm's powf (numpy's scalar power, as the
    authors' code), which is not always correctly rounded; the engine multiplies."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
    strings = id_strings(ids, prompt_pos, gen_pos) if strings is None else tuple(strings)
    n_prompt = len(prompt_pos) if n_prompt is None else n_prompt
    first = first_prompt_class(hidden[prompt_pos[0]], weight, bias) if len(prompt_pos) else None
    got = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, lm_head_bias=bias,
                      reference=ReferenceInputs(strings, n_prompt, first))
    want = reference_loop(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, strings, n_prompt, bias)
    assert got.maps.shape == (len(want), *grid)
    for t, ref in enumerate(want):
        np.testing.assert_array_equal(got.maps_u8[t], ref["u8"], err_msg=f"token {t}")
        np.testing.assert_array_equal(got.raw[t], ref["raw"], err_msg=f"token {t}")
        np.testing.assert_allclose(got.maps[t], ref["maps"], rtol=1e-6, atol=0)
        assert (got.lo[t], got.hi[t], got.interference_scale[t]) == (ref["lo"], ref["hi"], ref["scale"])
        np.testing.assert_array_equal(got.text_relevance[t, :len(ref["relevance"])], ref["relevance"])
        assert got.class_ids[t] == ref["cls"]
        assert got.nan_cells[t] == ref["nan_cells"] and got.undefined[t] == ref["undefined"], f"token {t}"
    return got


# --- the reference variant: the authors' maps ---------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_reference_random_inputs(seed):
    rng = np.random.default_rng(seed)
    grid = (int(rng.integers(1, 7)), int(rng.integers(1, 7)))
    assert_reference_agrees(make_inputs(seed, grid=grid, d=int(rng.integers(4, 32)), v=int(rng.integers(20, 300)),
                                        p=int(rng.integers(0, 6)), t=int(rng.integers(1, 9)), dtype=torch.float64))


def test_reference_token0_is_the_first_prompt_words_argmax_map():
    """Token 0's map is read with the argmax class at the first prompt position (checked by hand)."""
    inputs = make_inputs(20, dtype=torch.float64)
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
    got = assert_reference_agrees(inputs)
    guess = int((hidden[prompt_pos[0]] @ weight.T).argmax())
    assert got.class_ids[0] == guess != ids[gen_pos[0]]
    raw0 = (hidden[image_pos] @ weight[guess]).clamp_min(0).float().reshape(grid).numpy()
    np.testing.assert_array_equal(got.raw[0], raw0)  # the first item: no ECI
    corrected = compute_tam(*inputs)
    assert not np.array_equal(corrected.maps_u8[0], got.maps_u8[0])


def test_reference_repeats_and_a_generated_token_equal_to_a_prompt_token():
    got = assert_reference_agrees(make_inputs(2, p=3, t=7, prompt_ids=[7, 8, 9], ids_gen=[5, 5, 7, 5, 7, 5, 9],
                                              dtype=torch.float64))
    assert not got.undefined.any()


@pytest.mark.parametrize("grid", [(1, 7), (7, 1), (1, 1), (2, 1)])
def test_reference_thin_grids(grid):
    assert_reference_agrees(make_inputs(7, grid=grid, dtype=torch.float64))


def test_reference_with_bias():
    inputs = make_inputs(1, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    assert_reference_agrees(inputs, bias=torch.randn(inputs[1].shape[0], generator=g, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(3))
def test_reference_constant_windows_give_nan_stored_as_zero(seed):
    """A constant half of the map: windows inside it are constant, where their float32 arithmetic
    gives NaN (unless the mean of the 9 equal values rounds off them); 0 is stored and counted."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(seed, grid=(6, 5), t=8,
                                                                          dtype=torch.float64)
    hidden[image_pos[:15]] = hidden[image_pos[0]].clone()  # the top three rows read the same state
    got = assert_reference_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos))
    flagged = got.nan_cells > 0
    assert flagged.any() and (got.nan_cells < 30).all()


def test_reference_constant_maps():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(4, t=8, dtype=torch.float64)
    hidden[image_pos] = hidden[image_pos[0]].clone()  # every image position the same -> constant maps
    assert_reference_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos))


def test_reference_zero_range_is_all_nan():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(8, dtype=torch.float64)
    hidden[:] = 0  # with a negative bias every logit clips to 0: min = max, 0/0 everywhere
    got = assert_reference_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos),
                                  bias=-torch.ones(weight.shape[0], dtype=torch.float64))
    assert (got.nan_cells == grid[0] * grid[1]).all() and (got.maps_u8 == 0).all()


def test_reference_strings_that_do_not_line_up_with_the_ids():
    inputs = make_inputs(21, p=3, t=7, prompt_ids=[7, 8, 9], ids_gen=[5, 6, 5, 6, 10, 11, 5], dtype=torch.float64)
    _, _, ids, _, _, prompt_pos, gen_pos = inputs
    aligned = id_strings(ids, prompt_pos, gen_pos)
    base = assert_reference_agrees(inputs)
    # the answer re-tokenised into fewer strings: the last rounds run no ECI
    merged = aligned[:3] + ("w5w6", "w5w6") + aligned[7:]
    fewer = assert_reference_agrees(inputs, strings=merged)
    assert not np.array_equal(fewer.maps_u8, base.maps_u8) and not fewer.undefined.any()
    assert (fewer.interference_scale[len(merged) - 3:] == 0).all()
    # ... into more strings: the repeat rule compares shifted strings
    assert_reference_agrees(inputs, strings=aligned[:4] + ("w6a", "w6b") + aligned[5:])
    # the prompt into one more string: still defined; into three more: items without a text score
    split = ("w7a", "w7b") + aligned[1:]
    assert not assert_reference_agrees(inputs, strings=split, n_prompt=4).undefined.any()
    split3 = ("w7a", "w7b", "w8a", "w8b", "w9a", "w9b") + aligned[3:]
    assert assert_reference_agrees(inputs, strings=split3, n_prompt=6).undefined.all()


def test_reference_undefined_where_their_code_raises():
    # a repeated prompt word: their round 0 stacks an empty context
    got = assert_reference_agrees(make_inputs(22, p=3, prompt_ids=[7, 7, 8], dtype=torch.float64))
    assert got.undefined.tolist() == [True] + [False] * 5
    # every earlier string equal to the current one
    got = assert_reference_agrees(make_inputs(23, p=1, t=4, prompt_ids=[5], ids_gen=[5, 5, 5, 6], dtype=torch.float64))
    assert got.undefined.tolist() == [True, True, True, False]


def test_reference_bf16_logits_are_rounded_like_the_lm_head():
    """bf16 states: logits in bf16 (as their lm_head) then float32, not promoted before the product."""
    inputs = make_inputs(24, grid=(5, 6), d=32, v=400, dtype=torch.bfloat16)
    got = assert_reference_agrees(inputs)
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
    promoted = (hidden[image_pos].float() @ weight[ids[gen_pos[-1]]].float()).clamp_min(0)
    assert not torch.equal(promoted, (hidden[image_pos] @ weight[ids[gen_pos[-1]]]).float().clamp_min(0))
    assert got.maps_u8.shape == (6, 5, 6)


def test_reference_reads_only_the_needed_rows():
    """Besides the argmax row product describe computes, only the classes that occur are read."""
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(10, v=50)
    first = first_prompt_class(hidden[prompt_pos[0]], weight)
    big = torch.full((200_000, weight.shape[1]), float("nan"))
    used = torch.unique(torch.cat([ids[prompt_pos], ids[gen_pos], ids[gen_pos[:1] - 1], torch.tensor([first])]))
    big[used] = weight[used]
    ref = ReferenceInputs(id_strings(ids, prompt_pos, gen_pos), len(prompt_pos), first)
    got = compute_tam(hidden, big, ids, image_pos, grid, prompt_pos, gen_pos, reference=ref)
    want = compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos, reference=ref)
    assert np.isfinite(got.raw).all()
    np.testing.assert_array_equal(got.maps_u8, want.maps_u8)


def test_reference_bad_inputs():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(11)
    with pytest.raises(ValueError, match="n_prompt"):
        compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos,
                    reference=ReferenceInputs(("a",), 2, 0))
    with pytest.raises(ValueError, match="first_prompt_class"):
        compute_tam(hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos,
                    reference=ReferenceInputs(id_strings(ids, prompt_pos, gen_pos), len(prompt_pos), None))


# --- the corrected variant -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_random_inputs(seed):
    rng = np.random.default_rng(seed)
    grid = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    assert_corrected_agrees(make_inputs(seed, grid=grid, d=int(rng.integers(4, 32)), v=int(rng.integers(20, 300)),
                                        p=int(rng.integers(0, 6)), t=int(rng.integers(1, 9))))


def test_with_bias():
    inputs = make_inputs(1)
    assert_corrected_agrees(inputs, bias=torch.randn(inputs[1].shape[0], generator=torch.Generator().manual_seed(9)))


def test_repeated_words_are_excluded_from_interference():
    # the same token generated several times, and a generated token equal to a prompt token
    got = assert_corrected_agrees(make_inputs(2, p=3, t=6, prompt_ids=[7, 8, 9], ids_gen=[5, 5, 7, 5, 7, 5]))
    assert np.isfinite(got.maps).all()


def test_all_earlier_items_repeat_gives_no_interference():
    got = assert_corrected_agrees(make_inputs(3, p=2, t=3, prompt_ids=[4, 4], ids_gen=[4, 4, 4]))
    assert (got.interference_scale == 0).all()


def test_constant_maps():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(4)
    hidden[image_pos] = hidden[image_pos[0]].clone()  # every image position the same -> constant maps
    got = assert_corrected_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos))
    for t in range(got.maps.shape[0]):
        assert np.ptp(got.maps[t]) < 1e-6


def test_one_token_and_no_prompt():
    got = assert_corrected_agrees(make_inputs(5, p=0, t=1))
    assert got.interference_scale.tolist() == [0.0]
    assert_corrected_agrees(make_inputs(6, p=3, t=1))


@pytest.mark.parametrize("grid", [(1, 7), (7, 1), (1, 1), (2, 1)])
def test_thin_grids(grid):
    assert_corrected_agrees(make_inputs(7, grid=grid))


def test_all_zero_relevance_and_zero_maps():
    hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = make_inputs(8)
    # negative logits everywhere: every map and every relevance clips to 0, range 0
    hidden[:] = 0
    got = assert_corrected_agrees((hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos),
                                  bias=-torch.ones(weight.shape[0]))
    assert (got.maps == 0).all() and (got.maps_u8 == 0).all()


def test_sorting_network_sorts_every_input():
    """0/1 principle: a comparator network that sorts all 2^9 binary inputs sorts every input."""
    v = [((torch.arange(512) >> k) & 1).float() for k in range(9)]
    for a, b in SORT9:
        v[a], v[b] = torch.minimum(v[a], v[b]), torch.maximum(v[a], v[b])
    out = torch.stack(v, 1)
    assert torch.equal(out, out.sort(1).values)


@pytest.mark.parametrize("shape", [(3, 5, 6), (2, 1, 7), (2, 7, 1), (1, 1, 1), (1, 2, 2)])
def test_sorted_windows_are_numpy_reflect_windows_sorted(shape):
    x = torch.randint(0, 4, shape).float()  # ties on purpose
    got = torch.stack(sorted_windows(x)).numpy()
    for b in range(shape[0]):
        padded = np.pad(x[b].numpy(), 1, mode="reflect")
        for i in range(shape[1]):
            for j in range(shape[2]):
                np.testing.assert_array_equal(got[:, b, i, j], np.sort(padded[i:i + 3, j:j + 3].flatten()))


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
    want = corrected_loop(hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(), grid,
                          prompt_pos.tolist(), gen_pos.tolist())  # float64 loops
    for t, ref in enumerate(want):
        np.testing.assert_allclose(got.raw[t], ref["raw"].astype(np.float32), rtol=1e-7, atol=1e-7)
        np.testing.assert_array_equal(got.maps_u8[t], ref["u8"])
