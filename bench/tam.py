"""`make bench-tam`: the TAM engine against the plain-loop reference at Qwen2-VL-2B sizes.

Random tensors shaped like one painting: hidden size 1536, vocabulary 151936, a 32x32 merged
grid (1024 image tokens), 10 prompt-text tokens, 256 generated tokens. Both implementations
run on the same inputs (same seed), each in a fresh process so their memory peaks are their
own: after the inputs are built (and one warm-up call for the engine), the kernel's peak-RSS
mark is reset (/proc/self/clear_refs) and the peak extra memory is VmHWM minus the RSS then.
The loop reference computes full-vocabulary float32 logits at every position, as the
published code does.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import time

from testkit import procmem

D, V, GRID, P, T = 1536, 151936, (32, 32), 10, 256
TARGET_SPEEDUP, TARGET_MB = 100, 100


def build_inputs(seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    n = GRID[0] * GRID[1]
    pre, mid = 15, 6  # chat-template tokens before the image, between prompt and answer
    s = pre + n + 1 + P + mid + T
    hidden = torch.randn(s, D, generator=g)
    weight = torch.randn(V, D, generator=g) * 0.02
    ids = torch.randint(0, V, (s,), generator=g)
    ids[s - T:] = torch.randint(0, 4000, (T,), generator=g)  # a caption repeats common tokens
    image_pos = torch.arange(pre, pre + n)
    prompt_pos = torch.arange(pre + n + 1, pre + n + 1 + P)
    gen_pos = torch.arange(s - T, s)
    return hidden, weight, ids, image_pos, GRID, prompt_pos, gen_pos


def _measure(which: str, queue) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(2)
    inputs = build_inputs()
    if which == "engine":
        from precompute.tam import compute_tam

        compute_tam(*inputs)  # warm-up: first-call allocations are not the engine's working set
        base = procmem.reset_peak()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            result = compute_tam(*inputs)
            times.append(time.perf_counter() - t0)
        elapsed = statistics.median(times)
        out = result.maps_u8
    else:
        from tests.test_tam import reference_tam

        hidden, weight, ids, image_pos, grid, prompt_pos, gen_pos = inputs
        args = (hidden.numpy(), weight.numpy(), ids.numpy(), image_pos.tolist(), grid,
                prompt_pos.tolist(), gen_pos.tolist())
        base = procmem.reset_peak()
        t0 = time.perf_counter()
        ref = reference_tam(*args, dtype=np.float32)
        elapsed = time.perf_counter() - t0
        out = np.stack([r["u8"] for r in ref])
    queue.put((which, elapsed, (procmem.process("VmHWM") - base) / 2**20, out))  # MB


def run_isolated(which: str):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(which, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> int:
    import numpy as np

    print(f"TAM benchmark: hidden {D}, vocab {V}, grid {GRID[0]}x{GRID[1]}, {P} prompt tokens, {T} generated")
    _, t_engine, mb_engine, maps_engine = run_isolated("engine")
    print(f"TAM engine: {t_engine:.4f} s (median of 5), peak extra memory {mb_engine:.1f} MB", flush=True)
    _, t_ref, mb_ref, maps_ref = run_isolated("reference")
    print(f"TAM loop reference: {t_ref:.1f} s, peak extra memory {mb_ref:.1f} MB")
    differ = float(np.mean(np.abs(maps_engine.astype(int) - maps_ref.astype(int)) > 1))
    print(f"TAM agreement: {100 * (1 - differ):.3f}% of 8-bit cells within 1 level (float32 reference)")
    speedup = t_ref / t_engine
    ok = speedup >= TARGET_SPEEDUP and mb_engine <= TARGET_MB
    print(f"TAM speedup: {speedup:.0f}x (target >= {TARGET_SPEEDUP}x); engine peak extra memory "
          f"{mb_engine:.1f} MB (target <= {TARGET_MB} MB): {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
