"""`tamscope faithfulness DATASET`: other methods' maps of every span, and how faithful each map is.

Optional (not run by `tamscope precompute` unless `--faithfulness` is given): it costs many
forward passes (docs/precompute.md, "Time per painting"). Per painting, with the captioner that
described it:
1. the canvas and its baseline, the canvas blurred as the reliance stage blurs it (its `--blur`
   setting when it ran, else its default);
2. for every span with tokens, the map of each method (precompute.faithfulness.methods; the
   dataset's own TAM variant is read from tam_raw.safetensors, not recomputed), stored as
   methods/<method>/<span>.png with its float range;
3. deletion and insertion curves of each map and their areas (precompute.faithfulness.curves),
   the score being the span tokens' log-likelihood under teacher forcing;
4. with `--per-token`, the same for every caption token: its own map (the TAM map describe
   stored, tokens/<i>.png) ranks the pixels, its log-likelihood is the score (Token.faithfulness).
   Settings without it keep the stamps of datasets done before the option existed.
The painting's record and every map are committed as one step (contract.commit), so the stage
resumes like every other: a painting done with the same settings is skipped, and a new caption,
new spans or new reliance flags make it stale (precompute.runner.DOWNSTREAM).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image

from contract.schema import MapRef, MethodResult, PaintingRecord, SpanFaithfulness, TokenFaithfulness
from contract.store import Dataset, encode_png, read_png_u8
from precompute.lock import writer
from precompute.memory import parse_size
from precompute.models import Lazy, load_captioner
from precompute.runner import (
    Output,
    PaintingError,
    StopStage,
    add_model_options,
    add_run_options,
    load_options,
    parse_shard,
    run_stage,
)

STAGE = "faithfulness"
DEFAULT_METHODS = ("tam-reference", "tam-corrected", "logit", "attention", "gradient", "igos")


def parse_methods(text: str) -> list[str]:
    from precompute.faithfulness.methods import METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(f"faithfulness: --methods {text!r}: unknown {unknown or 'none given'}; "
                         f"choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(methods))


def stored_tam(folder: Path, record: PaintingRecord) -> dict:
    """{variant: (T, gh, gw) maps} of the TAM describe stored, when it lines up with the tokens."""
    raw = folder / "tam_raw.safetensors"
    variant = (record.provenance.get("tam") or {}).get("variant")
    if not raw.is_file() or variant is None:
        return {}
    from safetensors.numpy import load_file

    maps = load_file(raw).get("maps")
    return {variant: maps} if maps is not None and maps.shape[0] == len(record.tokens) else {}


# The methods that keep every activation for a backward pass: at real size on the CPU they are
# the ones that run out of memory (docs/faithfulness.md, "Memory")
BACKWARD_METHODS = ("gradient", "igos")


def out_of_memory(exc, doing: str, methods: list[str]) -> StopStage:
    """The painting's failure when `doing` ran out of memory on the CPU, with what to do instead.
    It stops the stage: the others would run out too, and a convolution whose oneDNN primitive
    failed to be created under the cap stays broken in this process ("could not create a
    primitive" on every later call, with memory to spare)."""
    lighter = [m for m in methods if m not in BACKWARD_METHODS] or [m for m in DEFAULT_METHODS
                                                                    if m not in BACKWARD_METHODS]
    heavy = [m for m in methods if m in BACKWARD_METHODS]
    advice = (f"leave out {' and '.join(heavy)} (they keep every activation for a backward pass): "
              f"--methods {','.join(lighter)}; " if heavy else "")
    return StopStage(f"out of memory on the CPU while {doing}: it needs more than the "
                     f"{max(exc.headroom, 0) / 2**30:.1f} GiB allowed (free memory, or --max-memory); {advice}"
                     f"or a smaller canvas (--max-pixels when describing), --batch-size 1, or a GPU "
                     f"(docs/faithfulness.md, Memory). The allocation that failed: {exc}")


def process(dataset: Dataset, captioner: Lazy, model_id: str, args: argparse.Namespace, methods: list[str]):
    # imported here, not under the memory cap (a module's mapping counts against it)
    from contextlib import nullcontext

    from precompute.faithfulness.captioner import as_float
    from precompute.faithfulness.curves import faithfulness_curves
    from precompute.faithfulness.igos import IgosSettings
    from precompute.faithfulness.methods import Painting
    from precompute.memory import OutOfMemory, capped, default_headroom
    from precompute.stages.reliance import DEFAULT_BLUR, blurred, caption_ids

    def apply(record: PaintingRecord) -> Output:
        """One painting; on the CPU under a memory cap (precompute.memory), so that a method that
        needs more than the machine has fails this painting with advice instead of the kernel
        killing the run (CUDA maps more address space than it uses: no cap there)."""
        import torch

        cpu = torch.device(captioner.get().device).type == "cpu"  # loaded before the cap: its weights are not the pass's
        doing = ["scoring the canvas"]  # what runs now, for the message
        headroom = default_headroom()
        if args.max_memory is not None:
            headroom = min(headroom, args.max_memory) if math.isfinite(headroom) else args.max_memory
        try:
            with capped(headroom) if cpu else nullcontext():
                return explain(record, doing)
        except OutOfMemory as exc:
            raise out_of_memory(exc, doing[0], methods) from exc

    def explain(record: PaintingRecord, doing: list[str]) -> Output:
        if not record.tokens or record.canvas is None or not record.prompt or record.grid is None:
            raise PaintingError("no caption tokens, canvas, grid or prompt to explain")
        generated = caption_ids(record, model_id, "faithfulness")
        folder = dataset.painting_dir(record.id)
        with Image.open(folder / record.canvas.path) as im:
            canvas = im.convert("RGB")
        reliance = record.stages.get("reliance")
        blur = reliance.settings.get("blur", DEFAULT_BLUR) if reliance else DEFAULT_BLUR
        baseline = blurred(canvas, blur)
        describe = record.stages.get("describe")
        max_new = describe.settings.get("max_new_tokens") if describe else None
        painting = Painting.open(captioner.get(), canvas, baseline, record.prompt, generated,
                                 [bool(t.visual) for t in record.tokens],
                                 IgosSettings(iterations=args.igos_iterations, ig_steps=args.igos_ig_steps,
                                              batch_size=args.batch_size),
                                 ended=max_new is None or len(generated) < max_new,
                                 stored_tam=stored_tam(folder, record))
        if painting.grid != (record.grid.h, record.grid.w):
            raise PaintingError(f"the canvas gives a {painting.grid} grid, the record says "
                                f"{(record.grid.h, record.grid.w)}")
        files = {}
        image = as_float(canvas)
        chosen = [span.index for span in record.spans if span.tokens]
        chosen = set(chosen[:args.max_spans] if args.max_spans else chosen)
        for span in record.spans:
            if span.index not in chosen:
                span.faithfulness = None
                continue
            maps = {}
            for m in methods:
                doing[0] = f"computing the {m} map of span {span.index}"
                maps[m] = painting.span_map(m, span.tokens)
            doing[0] = f"scoring span {span.index}'s deletion and insertion curves"
            curves = faithfulness_curves(painting.session.scorer(span.tokens), image, painting.baseline,
                                         [mm.unit for mm in maps.values()], steps=args.steps,
                                         batch_size=args.batch_size)
            results = {}
            for (method, mm), c in zip(maps.items(), curves, strict=True):
                png = f"methods/{method}/{span.index}.png"
                files[png] = encode_png(mm.u8)
                defined = c.deletion_area is not None
                results[method] = MethodResult(
                    map=MapRef(png=png, lo=mm.lo, hi=mm.hi), tokens=list(mm.tokens),
                    deletion=_rounded(c.deletion) if defined else None,
                    insertion=_rounded(c.insertion) if defined else None,
                    deletion_area=_round(c.deletion_area), insertion_area=_round(c.insertion_area))
            first = curves[0]
            span.faithfulness = SpanFaithfulness(score_original=_round(first.original),
                                                 score_baseline=_round(first.baseline), steps=args.steps,
                                                 methods=results)
        for token in record.tokens:  # without --per-token, earlier per-token curves go
            token.faithfulness = None
        if args.per_token:
            doing[0] = "scoring every token's curves (--per-token)"
            per_token(record, folder, painting, image, args)
        return Output(record, files)

    return apply


def per_token(record: PaintingRecord, folder: Path, painting, image, args: argparse.Namespace) -> None:
    """Every token's deletion and insertion curves: the canvas's pixels ranked by the token's own
    map (its 8-bit PNG, what the explorer shows), the score its log-likelihood. One scorer gives
    every token's log P per image (curves.faithfulness_curves, per_map), so the canvas and the
    baseline are scored once and the perturbed images of all tokens share the batches. A token
    without a map gets none."""
    from precompute.faithfulness.curves import faithfulness_curves

    variant = (record.provenance.get("tam") or {}).get("variant")
    method = f"tam-{variant}" if variant else "tam"
    grid = (record.grid.h, record.grid.w)
    mapped = [t for t in record.tokens if t.map is not None]
    if not mapped:
        return
    maps = []
    for token in mapped:
        u8 = read_png_u8(folder / token.map.png)
        if u8.shape != grid:
            raise PaintingError(f"token {token.index}'s map is {u8.shape}, the grid {grid}")
        maps.append(u8 / 255.0)
    curves = faithfulness_curves(painting.session.scorer_each([t.index for t in mapped]), image, painting.baseline,
                                 maps, steps=args.steps, batch_size=args.batch_size, per_map=True)
    for token, c in zip(mapped, curves, strict=True):
        defined = c.deletion_area is not None
        token.faithfulness = TokenFaithfulness(
            method=method, score_original=_round(c.original), score_baseline=_round(c.baseline), steps=args.steps,
            deletion=_rounded(c.deletion) if defined else None, insertion=_rounded(c.insertion) if defined else None,
            deletion_area=_round(c.deletion_area), insertion_area=_round(c.insertion_area))


def _size(text: str) -> float:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4) + 0.0  # + 0.0: no "-0.0" in JSON


def _rounded(values) -> list[float]:
    return [_round(v) for v in values]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=None,
                        help="the captioner that wrote the captions (default: the dataset's captioner)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated methods to compare (docs/faithfulness.md)")
    parser.add_argument("--steps", type=int, default=10, help="deletion/insertion steps (fractions j / steps)")
    parser.add_argument("--batch-size", type=int, default=8, help="perturbed images per forward pass")
    parser.add_argument("--max-spans", type=int, default=0,
                        help="only the first N spans with tokens of each painting (0: every span)")
    parser.add_argument("--per-token", action="store_true",
                        help="also every token's curves, ranked by its own map (T more maps' worth of passes)")
    parser.add_argument("--igos-iterations", type=int, default=10, help="iGOS++ optimisation steps")
    parser.add_argument("--igos-ig-steps", type=int, default=5, help="iGOS++ integrated-gradient points")
    parser.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                        help="on the CPU, the most a painting may allocate beyond the loaded model, e.g. 8G "
                             "(default: the memory free when it starts, less 1 GiB); beyond it the painting "
                             "fails and the stage stops with advice instead of the machine running out")
    add_model_options(parser)
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    from precompute.stages.reliance import captioner_id

    for name in ("steps", "batch_size", "igos_iterations", "igos_ig_steps"):
        if getattr(args, name) < 1:
            raise SystemExit(f"faithfulness: --{name.replace('_', '-')} must be at least 1")
    if args.max_spans < 0:
        raise SystemExit("faithfulness: --max-spans must be 0 (every span) or more")
    methods = parse_methods(args.methods)
    dataset = Dataset(args.dataset)
    model_id = captioner_id(args, dataset)
    captioner = Lazy(lambda: load_captioner(model_id, args.device, args.dtype, args.revision, **load_options(args)), STAGE)
    settings = {"model": model_id, "revision": args.revision, "methods": methods, "steps": args.steps,
                "igos": {"iterations": args.igos_iterations, "ig_steps": args.igos_ig_steps}, "max_spans": args.max_spans,
                "dtype": args.dtype, **({"per_token": True} if args.per_token else {})}
    shard = parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, settings, process(dataset, captioner, model_id, args, methods),
                            shard=shard, force=args.force, needs="spans")
    return 1 if summary.failed else 0
