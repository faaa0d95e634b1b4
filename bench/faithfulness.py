"""`make bench-faithfulness`: what the faithfulness stage costs per span, on the real Qwen2-VL-2B
architecture (random weights, float32, CPU), and a GPU estimate from the counted FLOPs.

The stage's work is made of three kinds of model calls (docs/faithfulness.md has the counts per
method): a scoring pass (one teacher-forced forward pass of one perturbed image, the LM head only
at the span's tokens), the same batched, and a forward + backward pass (the gradient method, every
iGOS++ step). This benchmark times each once on the canvas describe makes of a 1024x768 painting
(1036x756, 999 vision tokens) with a caption of `--caption-tokens` tokens, through the stage's own
code (precompute.faithfulness.captioner.Session), counts their FLOPs with torch.utils.flop_counter,
and multiplies by the passes of one span with every method at the stage's defaults (10 steps,
iGOS++ 10 iterations x 5 integration points). The GPU figure is an ESTIMATE: FLOPs divided by an
assumed sustained throughput (`--gpu-tflops`, default 100 TFLOP/s: about a third of an A100's
bf16 peak), not a measurement.

Real size needs about 10 GB of RAM: other runs share this machine, so run it under the lock
`flock /tmp/bench-cpu.lock` (the make target does). `--probe` needs about 2 GB: it builds the real
widths with 1 or 2 vision blocks and decoder layers (three builds), measures time and FLOPs of
each, and extrapolates linearly to the real depth (the layers are identical, so FLOPs extrapolate
exactly; times are an estimate). `--tiny` checks the code path in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from testkit import procmem

GIB = 1024**3


def passes_per_span(steps: int, iterations: int, ig_steps: int) -> dict:
    """(forward, forward+backward) passes one span costs per method, at these settings."""
    curve = 2 * (steps - 1)  # deletion + insertion, the end points shared
    return {"scoring (original + baseline, once per span)": (2, 0),
            "tam-reference / tam-corrected / logit": (curve, 0),  # their maps come from one pass per painting
            "attention": (curve, 0),
            "gradient": (curve, 1),
            "igos": (curve, iterations * 2 * ig_steps)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faithfulness", description=__doc__.split("\n")[0])
    parser.add_argument("--caption-tokens", type=int, default=256)
    parser.add_argument("--span-tokens", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-tflops", type=float, default=100.0, help="assumed sustained GPU throughput")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tiny", action="store_true", help="tiny configs: checks the code path in seconds")
    parser.add_argument("--probe", action="store_true",
                        help="real widths with 1-2 layers (about 2 GB): per-layer time and FLOPs, extrapolated to "
                             "the real depth (32 vision blocks, 28 decoder layers); no lock needed")
    args = parser.parse_args(argv)
    if args.probe:
        return probe(args)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Qwen2VLForConditionalGeneration

    from bench.cpu import build, captioner_config
    from precompute.faithfulness.captioner import as_float
    from precompute.stages.reliance import blurred
    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer

    torch.set_num_threads(args.threads)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "threads": args.threads, "tiny": args.tiny,
                     "torch": torch.__version__, "load_start": os.getloadavg()[0]}
    tok = qwen2vl_tokenizer()
    model = build(Qwen2VLForConditionalGeneration, captioner_config(tok, args.tiny), torch.float32, results,
                  "captioner", 0)
    canvas, generated, session = random_session(model, tok, "Qwen2-VL-2B (random weights)", args.caption_tokens)
    image, base = as_float(canvas), as_float(blurred(canvas, 0.1))
    first = max(1, min(10, len(generated) - args.span_tokens))  # a phrase inside the caption
    tokens = list(range(first, min(first + args.span_tokens, len(generated))))
    score = session.scorer(tokens)
    results["canvas"] = list(canvas.size)
    results["grid"] = list(session.grid)
    results["sequence"] = int(session.forced["input_ids"].shape[1])
    print(f"canvas {canvas.size[0]}x{canvas.size[1]}, grid {session.grid[0]}x{session.grid[1]}, sequence "
          f"{results['sequence']} tokens, span of {len(tokens)} tokens; load {os.getloadavg()[0]:.1f}", flush=True)

    def timed(name, fn):
        """Wall time, peak RSS and counted FLOPs of one call (the counter's per-op bookkeeping is
        negligible next to matrices of this size)."""
        procmem.reset_peak()
        t0 = time.perf_counter()
        with FlopCounterMode(display=False) as count:
            fn()
        results[name] = {"seconds": time.perf_counter() - t0, "peak_rss": procmem.process("VmHWM"),
                         "flops": count.get_total_flops()}
        print(f"{name}: {results[name]['seconds']:.1f} s, {results[name]['flops'] / 1e12:.2f} TFLOP, peak RSS "
              f"{results[name]['peak_rss'] / GIB:.1f} GiB", flush=True)

    timed("forward_1", lambda: score(image[None]))
    timed("forward_2_batched", lambda: score(np.stack([image, base])))
    torch_score = session.torch_scorer(tokens)

    def forward_backward():
        x = torch.from_numpy(image)[None].requires_grad_(True)
        with torch.enable_grad():  # the input's gradient only, as the stage asks for it
            torch.autograd.grad(torch_score(x).sum(), x)

    # the backward keeps every activation of the vision tower and the language model: at the real
    # size that is more than this machine may have free, and the kernel's OOM killer would end the
    # run without a word; capped, the allocation that does not fit fails here and is reported
    headroom = procmem.system("MemAvailable") - 2 * GIB
    failed = within_memory(lambda: timed("forward_backward", forward_backward), headroom)
    if failed:
        print(f"forward_backward: does not fit in the {headroom / GIB:.1f} GiB free beside the model ({failed})",
              flush=True)
        results["forward_backward"] = None
        results["forward_backward_failed"] = {"headroom": headroom, "error": failed}
    results["flops_forward"] = results["forward_1"]["flops"]
    fwd_bwd = results["forward_backward"]
    # not run: the backward to the input costs one more forward in FLOPs (the probe counts exactly 2x)
    results["flops_forward_backward"] = fwd_bwd["flops"] if fwd_bwd else 2 * results["flops_forward"]

    f1 = results["forward_1"]["seconds"]
    fb = fwd_bwd["seconds"] if fwd_bwd else 3 * f1  # unmeasured: the usual 3x of a forward pass, labelled
    results["forward_backward_estimated"] = fwd_bwd is None
    results["load_end"] = os.getloadavg()[0]
    print(f"2 images batched: {results['forward_2_batched']['seconds'] / f1:.2f} x one")
    report(results, f1, fb, results["flops_forward"], results["flops_forward_backward"], args.gpu_tflops,
           "measured" + (" (forward+backward not run: time 3 x forward, FLOPs 2 x)" if fwd_bwd is None else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


def within_memory(fn, headroom: float) -> str | None:
    """Run fn with this process's address space capped at its size now plus HEADROOM bytes
    (precompute.memory.capped): an allocation beyond it fails inside fn and is returned as the
    reason, instead of the machine running out. None when fn ran."""
    from precompute.memory import OutOfMemory, capped

    try:
        with capped(headroom):
            fn()
        return None
    except OutOfMemory as exc:
        return str(exc)[:200]


def random_session(model, tok, name: str, caption_tokens: int):
    """(canvas, generated ids, Session) of the benchmark painting with a random-weight captioner:
    the CPU benchmark's painting at the default sizing and its typical caption's ids."""
    import torch

    from bench.cpu import CAPTION
    from precompute.captioner_inputs import model_image
    from precompute.faithfulness.captioner import Session
    from precompute.models import Captioner
    from precompute.smoke import draw_painting
    from precompute.tiny.qwen2vl import qwen2vl_processor

    captioner = Captioner(model, qwen2vl_processor(tok), name, "random", torch.device("cpu"), torch.float32)
    canvas = model_image(draw_painting("village-under-stars", (1024, 768)))
    generated = (tok(CAPTION)["input_ids"] * 4)[:caption_tokens]
    return canvas, generated, Session.open(captioner, canvas, "Describe the content and style of this image.", generated)

def measure(cfg, tok, args, results: dict) -> dict:
    """Time and FLOPs of one scoring pass and one forward + backward pass with config `cfg`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Qwen2VLForConditionalGeneration

    from bench.cpu import build
    from precompute.faithfulness.captioner import as_float

    model = build(Qwen2VLForConditionalGeneration, cfg, torch.float32, results, "probe", 0)
    canvas, generated, session = random_session(model, tok, "probe", args.caption_tokens)
    image = torch.from_numpy(as_float(canvas))[None]
    tokens = list(range(10, 10 + args.span_tokens))
    out = {"sequence": int(session.forced["input_ids"].shape[1]), "grid": list(session.grid)}
    for name, grad in (("forward", False), ("forward_backward", True)):
        x = image.clone().requires_grad_(grad)
        t0 = time.perf_counter()
        with FlopCounterMode(display=False) as count, torch.set_grad_enabled(grad):
            value = session.token_logprobs(x, tokens).sum()
            if grad:
                torch.autograd.grad(value, x)  # the input's gradient only, as the stage asks for it
        out[name] = {"seconds": time.perf_counter() - t0, "flops": count.get_total_flops()}
    del model, session
    return out


def probe(args) -> int:
    """Per-layer cost from three shallow builds of the real widths, extrapolated linearly to the real
    depth: cost(v, t) = base + v * per_vision_block + t * per_decoder_layer (identical layers)."""
    import torch

    from bench.cpu import captioner_config
    from precompute.tiny.qwen2_tokenizer import qwen2vl_tokenizer

    torch.set_num_threads(args.threads)
    tok = qwen2vl_tokenizer()
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "threads": args.threads, "probe": True,
                     "torch": torch.__version__, "load_start": os.getloadavg()[0]}
    runs = {}
    for v, t in ((1, 1), (2, 1), (1, 2)):
        cfg = captioner_config(tok, False)
        cfg.vision_config.depth = v
        cfg.text_config.num_hidden_layers = t
        if hasattr(cfg.text_config, "layer_types") and cfg.text_config.layer_types:
            cfg.text_config.layer_types = cfg.text_config.layer_types[:t]
        runs[(v, t)] = measure(cfg, tok, args, results)
        print(f"vision blocks {v}, decoder layers {t}: " + ", ".join(
            f"{k} {m['seconds']:.1f} s {m['flops'] / 1e12:.3f} TFLOP" for k, m in runs[(v, t)].items()
            if isinstance(m, dict)), flush=True)
    full = {}
    for kind in ("forward", "forward_backward"):
        for key in ("seconds", "flops"):
            a, bv, bt = (runs[k][kind][key] for k in ((1, 1), (2, 1), (1, 2)))
            per_v, per_t = bv - a, bt - a
            # times of a busy machine need not grow with the layers: then there is nothing to extrapolate
            sane = per_v > 0 and per_t > 0
            full.setdefault(kind, {})[key] = a + 31 * per_v + 27 * per_t if sane else None  # 32 blocks, 28 layers
    results["runs"] = {f"{v}x{t}": r for (v, t), r in runs.items()}
    results["extrapolated"] = full
    results["sequence"] = runs[(1, 1)]["sequence"]
    report(results, full["forward"]["seconds"], full["forward_backward"]["seconds"], full["forward"]["flops"],
           full["forward_backward"]["flops"], args.gpu_tflops, "extrapolated from 1-2 layer builds")
    results["load_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


def report(results: dict, f1: float | None, fb: float | None, flops_f: float, flops_fb: float, tflops: float,
           how: str) -> None:
    """Per span and method: passes, CPU seconds (when the pass times are known), GPU estimate."""
    rows = []
    for method, (fwd, bwd) in passes_per_span(10, 10, 5).items():
        cpu = fwd * f1 + bwd * fb if f1 is not None and fb is not None else None
        rows.append({"method": method, "forward": fwd, "forward_backward": bwd, "cpu_seconds": cpu,
                     "gpu_seconds_estimate": (fwd * flops_f + bwd * flops_fb) / (tflops * 1e12)})
    results["per_span"] = rows
    secs = lambda x: "time n/a" if x is None else f"{x:.1f} s"  # noqa: E731
    print(f"\nQwen2-VL-2B, {results.get('sequence')} tokens, {how}: forward {secs(f1)} {flops_f / 1e12:.2f} TFLOP, "
          f"forward+backward {secs(fb)} {flops_fb / 1e12:.2f} TFLOP")
    print(f"per span, defaults (10 steps, iGOS++ 10 x 5); CPU = pass times x passes; GPU = ESTIMATE from counted "
          f"FLOPs at {tflops:.0f} TFLOP/s")
    for r in rows:
        cpu = "     n/a" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:8.0f}"
        print(f"  {r['method']:<45} {r['forward']:4d} fwd {r['forward_backward']:4d} fwd+bwd  CPU {cpu} s  "
              f"GPU~ {r['gpu_seconds_estimate']:6.2f} s")


if __name__ == "__main__":
    sys.exit(main())
