"""`tamscope describe INPUT DATASET`: caption each painting and compute a TAM per generated token.

Per painting:
1. Load and check the image (precompute.paintings: 8-bit RGB, first frame); size it as the
   authors' pipeline does (precompute.captioner_inputs.model_image: at most `--max-pixels`, 1280
   merged vision tokens by default) and make it the canvas (the image the maps align to, exactly
   what the model sees), with a thumbnail.
2. Greedy caption with the chat template (prompt + image), `--max-new-tokens`, in one vision
   pass (precompute.generation.generate_greedy): hooks keep, while generating, the last-layer
   hidden states after the final norm (what the LM head reads: the states a teacher-forced
   pass over prompt + caption gives, without running it) and log P(token | image), which is
   stored for reliance (tam_raw.safetensors `logp_image`), so reliance runs only its blurred pass.
3. The TAM engine (precompute.tam) on those states, the LM-head rows and the token layout:
   image tokens (`<|image_pad|>` run, raster order over the merged grid; a tiled family's tiles
   are several grids placed on one, precompute.tiling), the user's prompt
   text (between `<|vision_end|>` and `<|im_end|>`), and the generated tokens (the end token
   and anything after it excluded). `--tam-variant reference` (default) gives the authors' maps
   and needs what their code reads besides: the re-tokenised strings of the prompt and of the
   whole answer (end token included) for the repeat rule, and the argmax class at the first
   prompt position (one full LM-head row); the painting's provenance says whether the strings
   line up with the ids, which tokens hold NaN cells (stored as 0) and which maps their code
   could not compute (docs/tam.md). `corrected` needs neither.
4. Tokens with character offsets: the caption is decoded prefix by prefix, so each token gets
   exactly the text it adds; a byte-level token that only starts a multi-byte character adds
   nothing (empty text) and the token completing it carries the character. Concatenating the
   token texts rebuilds the caption exactly.
Everything is built in memory and committed with the record only once the caption and its maps
succeeded (contract.commit): canvas.jpg, thumb.jpg, tokens/<i>.png (8-bit maps),
tam_raw.safetensors (raw ECI maps, normalisation constants, filtered float maps, text relevance).
A failure is appended to the painting's existing record, whose caption and files stay.

`--batch-size N`: N paintings are generated as one left-padded batch (describe_batch); each is
still committed on its own, and a painting that fails (unreadable image, empty caption, a batch
that raises because of it: the batch is then generated one painting at a time) fails alone.

Resuming: a painting is skipped when its record is stamped with the same settings and was made
from the same image bytes (provenance.input.sha256); a changed image is described again. Changed
annotations alone are copied into the record without captioning again (and the metadata verdicts,
graded against them, are redone by the metadata stage). Records whose input file is gone are
reported, never deleted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contract.commit import commit_painting
from contract.inputs import InputFolder, PaintingInput, fingerprint, input_of, scan_input, vanished
from contract.schema import Annotations, Grid, ImageRef, MapRef, ModelRef, PaintingRecord, Token
from contract.store import Dataset, encode_png
from precompute.captioner_inputs import (
    FACTOR,
    MAX_PIXELS,
    MIN_PIXELS,
    batch_inputs,
)
from precompute.families.base import LayoutError
from precompute.generation import Generation, generate_greedy
from precompute.lock import update_manifest, writer
from precompute.models import Lazy, load_captioner
from precompute.paintings import fit, jpeg_bytes, load_painting
from precompute.placement import weights_of
from precompute.progress import progress
from precompute.runner import (
    Output,
    PaintingError,
    StageSummary,
    add_batch_option,
    add_model_options,
    add_run_options,
    attempt,
    check_batch_size,
    in_shard,
    is_done,
    load_options,
    parse_shard,
)

STAGE = "describe"
DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
DEFAULT_PROMPT = "Describe the content and style of this image."
TAM_VARIANTS = ("reference", "corrected")  # --tam-variant; the first is the default (docs/tam.md)
THUMB_SIDE = 256
Clock = Callable[[str], AbstractContextManager]  # clock(part): a context that times that part of describe
LOGP_KEY = "logp_image"  # tam_raw.safetensors: (T,) float64 log P(token | image) for reliance


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="folder of paintings (+ optional annotations.json/csv)")
    parser.add_argument("dataset", type=Path, help="dataset folder to write into (created or resumed)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="captioner hub id or local folder: Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5, InternVL, "
                             "LLaVA-OneVision (docs/models.md)")
    add_model_options(parser)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="the captioning prompt (the paper's)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="caption length limit in tokens")
    parser.add_argument("--tam-variant", choices=TAM_VARIANTS, default=TAM_VARIANTS[0],
                        help="reference: the authors' maps, bit for bit; corrected: without their quirks (docs/tam.md)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help="image area the model sees at most (default 1280*28*28: 1280 vision tokens, as the authors)")
    parser.add_argument("--min-pixels", type=int, default=MIN_PIXELS,
                        help="image area the model sees at least (default 256*28*28, as the authors)")
    add_batch_option(parser)
    add_run_options(parser, "paintings already described")
    parser.add_argument("--name", default=None, help="dataset name (manifest)")
    parser.add_argument("--description", default=None, help="dataset description (manifest)")


@dataclass
class Caption:
    text: str
    tokens: list[Token]
    grid: tuple[int, int]
    raw: dict[str, np.ndarray]  # what goes into tam_raw.safetensors
    maps_u8: np.ndarray  # (T, gh, gw)
    tam: dict  # provenance of the maps: the variant and, in reference, its flags


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Text each token adds to the decoded caption (see step 4 of the module docstring)."""
    texts, done = [], ""
    for i in range(len(ids)):
        current = tokenizer.decode(ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if current.endswith("\ufffd") and i < len(ids) - 1:
            texts.append("")  # an incomplete character: its bytes wait for the token that completes it
            continue
        if not current.startswith(done):
            raise PaintingError("the tokenizer's decoding is not prefix-stable; cannot give tokens offsets")
        texts.append(current[len(done):])
        done = current
    return texts


def build_tokens(tokenizer, ids: list[int]) -> tuple[str, list[Token]]:
    texts = token_texts(tokenizer, ids)
    tokens, start = [], 0
    for i, (tid, text) in enumerate(zip(ids, texts, strict=True)):
        tokens.append(Token(index=i, id=tid, text=text, start=start, end=start + len(text)))
        start += len(text)
    return "".join(texts), tokens


def retokenised(tok, ids: list[int]) -> list[str]:
    """The token strings the authors' repeat rule compares: the ids decoded (special tokens kept)
    and tokenised again, which can split differently from the ids themselves."""
    return tok.tokenize(tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


def reference_inputs(tok, hidden, head, prompt_ids: list[int], answer_ids: list[int], first_pos: int | None):
    """head: the LM head (its .weight and .bias are read).
    (ReferenceInputs for the engine, provenance facts): the re-tokenised prompt and answer (all
    generated ids, end token included, as their code decodes them) and the argmax class at the
    first prompt position."""
    from precompute.tam_reference import ReferenceInputs, first_prompt_class

    prompt, answer = retokenised(tok, prompt_ids), retokenised(tok, answer_ids)
    first = first_prompt_class(hidden[first_pos], head.weight, head.bias) if first_pos is not None else None
    lined_up = prompt == tok.convert_ids_to_tokens(prompt_ids) and answer == tok.convert_ids_to_tokens(answer_ids)
    facts = {"strings_match_ids": lined_up}
    if first is not None:
        facts["first_prompt_class"] = {"id": first, "text": tok.decode([first])}
    return ReferenceInputs(tuple(prompt + answer), len(prompt), first), facts


def no_clock(part: str) -> AbstractContextManager:
    """The default clock: times nothing."""
    return nullcontext()


def caption_of(captioner, generation: Generation, grid_thw, variant: str, clock: Clock = no_clock,
               canvas_size: tuple[int, int] | None = None) -> Caption:
    """The caption, its tokens and maps from one row of a generation (precompute.generation):
    the states taken while generating are those of a teacher-forced pass over prompt + caption,
    so no second pass runs. grid_thw: the row's image_grid_thw (3,) (None for families without
    it); canvas_size: (w, h) of the canvas, which tiled families' grids come from."""
    import torch

    from precompute.tam import compute_tam

    tok, model, family = captioner.processor.tokenizer, captioner.model, captioner.family
    prompt_ids, answer = generation.prompt_ids, generation.answer  # answer: the end token included
    n_prompt = len(prompt_ids)
    stops = family.stop_ids(tok)
    stops |= set(np.atleast_1d(model.generation_config.eos_token_id or []).tolist())
    end = next((i for i, t in enumerate(answer) if t in stops), len(answer))
    generated = answer[:end]
    if not generated:
        raise PaintingError("the captioner produced an empty caption")

    hidden = generation.hidden[:n_prompt + len(generated)]  # (S, D), S = P + T: prompt + caption
    assert hidden.shape[0] == n_prompt + len(generated), "generation kept too few states"
    full = torch.tensor(prompt_ids + generated)  # (S,)
    try:
        image_pos, prompt_pos = family.layout(prompt_ids, tok)
    except LayoutError as exc:
        raise PaintingError(str(exc)) from None
    try:
        tiling = family.tiling({"image_grid_thw": grid_thw, "canvas_size": canvas_size, "n_image": len(image_pos)},
                               captioner.processor)
    except LayoutError as exc:
        raise PaintingError(str(exc)) from None
    grid = tiling.grid
    with weights_of(family.lm_head(model)) as head:  # .weight (V, D), .bias, wherever --device-map put them
        reference, tam_facts = None, {}
        if variant == "reference":
            reference, tam_facts = reference_inputs(tok, hidden, head, [prompt_ids[i] for i in prompt_pos], answer,
                                                    prompt_pos[0] if prompt_pos else None)
        with clock("tam"):
            tam = compute_tam(hidden, head.weight, full, torch.tensor(image_pos), grid, torch.tensor(prompt_pos),
                              torch.arange(n_prompt, n_prompt + len(generated)), lm_head_bias=head.bias,
                              reference=reference, tiling=tiling)
    with clock("tokens"):
        caption, tokens = build_tokens(tok, generated)
    raw = {"raw": tam.raw, "lo": tam.lo, "hi": tam.hi, "maps": tam.maps, "text_relevance": tam.text_relevance,
           "interference_scale": tam.interference_scale, "class_ids": tam.class_ids, "nan_cells": tam.nan_cells,
           "token_ids": np.asarray(generated, dtype=np.int64),
           # log P(token | image, prompt, caption so far), read by reliance (its with-image term)
           LOGP_KEY: generation.logp[:len(generated)].cpu().numpy().astype(np.float64)}
    if reference is not None:
        tam_facts |= {"nan_cells": int(tam.nan_cells.sum()), "nan_tokens": np.flatnonzero(tam.nan_cells).tolist(),
                      "undefined_tokens": np.flatnonzero(tam.undefined).tolist()}
    return Caption(caption, tokens, grid, raw, tam.maps_u8, {"variant": variant, **tam_facts})


def settings_of(args: argparse.Namespace) -> dict:
    return {"model": args.model, "revision": args.revision, "prompt": args.prompt,
            "max_new_tokens": args.max_new_tokens, "min_pixels": args.min_pixels, "max_pixels": args.max_pixels,
            "tam_variant": args.tam_variant, "dtype": args.dtype}


def describe_one(painting: PaintingInput, args, captioner: Lazy, clock: Clock = no_clock,
                 streamer=None) -> Output:
    """The record of one painting and every file it references, in memory: nothing is written here.
    clock(part) times the parts "generate", "tam" and "tokens" (bench/cpu.py). `streamer`: a
    transformers streamer (put(ids)/end()) that sees the tokens as they are generated (`tamscope
    serve --live` streams them, precompute.liveworker); None for precompute."""
    outcome, = describe_batch([painting], args, captioner, clock, streamer)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def describe_batch(paintings: list[PaintingInput], args, captioner: Lazy,
                   clock: Clock = no_clock, streamer=None) -> list[Output | Exception]:
    """describe_one for several paintings, generated as one left-padded batch: each painting's
    Output or its error, in order. A painting whose image cannot be read, whose generation
    fails or whose caption is empty fails alone; the others are finished."""
    outcomes: list = [None] * len(paintings)
    loaded_ok = []  # (index, painting, loaded image)
    for i, painting in enumerate(paintings):
        try:
            loaded_ok.append((i, painting, load_painting(painting.path)))
        except Exception as exc:  # noqa: BLE001 (recorded as this painting's failure)
            outcomes[i] = exc
    if not loaded_ok:
        return outcomes
    try:
        model = captioner.get()
    except Exception as exc:  # noqa: BLE001 (a missing model: every painting of the batch records it)
        for i, *_ in loaded_ok:
            outcomes[i] = exc
        return outcomes
    prepared = []  # (index, painting, loaded image, canvas): the canvas sized for the captioner's family
    for i, painting, loaded in loaded_ok:
        try:
            prepared.append((i, painting, loaded, model.family.model_image(loaded.image, args.min_pixels,
                                                                           args.max_pixels, model.processor)))
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = exc
    if not prepared:
        return outcomes
    rows = generate_rows(model, [canvas for *_, canvas in prepared], args, clock, streamer)
    for (i, painting, loaded, canvas), row in zip(prepared, rows, strict=True):
        try:
            if isinstance(row, BaseException):
                raise row
            generation, grid_thw = row
            result = caption_of(model, generation, grid_thw, args.tam_variant, clock, canvas_size=canvas.size)
            outcomes[i] = painting_output(painting, loaded, canvas, model, result, args)
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = exc
    return outcomes


def generate_rows(captioner, canvases: list, args, clock: Clock = no_clock, streamer=None) -> list:
    """(Generation, image_grid_thw row or None) for each canvas, generated as one batch; when the
    batch raises, each canvas alone, so only the canvas that breaks it gets the error."""
    try:
        inputs = batch_inputs(captioner, canvases, [args.prompt] * len(canvases))
        with clock("generate"):
            generations = generate_greedy(captioner, inputs, args.max_new_tokens, streamer=streamer)
        grids = inputs["image_grid_thw"] if "image_grid_thw" in inputs else [None] * len(generations)
        return list(zip(generations, grids, strict=True))
    except Exception as exc:  # noqa: BLE001
        if len(canvases) == 1:
            return [exc]
        return [generate_rows(captioner, [canvas], args, clock, streamer)[0] for canvas in canvases]


def painting_output(painting: PaintingInput, loaded, canvas, model, result: Caption, args) -> Output:
    """The record and files of one described painting."""
    from safetensors.numpy import save

    thumb = fit(canvas, THUMB_SIDE)
    files = {"canvas.jpg": jpeg_bytes(canvas), "thumb.jpg": jpeg_bytes(thumb, quality=85)}
    for token in result.tokens:
        png = f"tokens/{token.index}.png"
        files[png] = encode_png(result.maps_u8[token.index])
        token.map = MapRef(png=png, lo=float(result.raw["lo"][token.index]), hi=float(result.raw["hi"][token.index]))
    files["tam_raw.safetensors"] = save({k: np.ascontiguousarray(v) for k, v in result.raw.items()})
    source = {"file": painting.path.name, "sha256": loaded.sha256, **({"notes": loaded.notes} if loaded.notes else {})}
    record = PaintingRecord(
        id=painting.id, source_file=painting.path.name, annotations=painting.annotations,
        canvas=ImageRef(path="canvas.jpg", width=canvas.width, height=canvas.height),
        thumb=ImageRef(path="thumb.jpg", width=thumb.width, height=thumb.height),
        grid=Grid(h=result.grid[0], w=result.grid[1]), prompt=args.prompt, caption=result.text,
        tokens=result.tokens,
        provenance={"captioner": {"id": model.model_id, "revision": model.revision,
                                  "device": str(model.device), "dtype": str(model.dtype).replace("torch.", "")},
                    "tam": result.tam, "tam_raw": "tam_raw.safetensors", "input": source},
    )
    return Output(record, files)


def with_annotations(record: PaintingRecord, annotations: Annotations) -> PaintingRecord:
    record.annotations = annotations
    record.stages.pop("metadata", None)  # its verdicts were graded against the old ground truth
    return record


def new_record(painting: PaintingInput) -> PaintingRecord:
    """The record of a painting that failed before it was ever described."""
    return PaintingRecord(id=painting.id, source_file=painting.path.name, annotations=painting.annotations,
                          provenance={"input": {"file": painting.path.name}})


def run(args: argparse.Namespace) -> int:
    if not FACTOR * FACTOR <= args.min_pixels <= args.max_pixels:
        raise SystemExit(f"describe: need {FACTOR * FACTOR} <= --min-pixels <= --max-pixels "
                         f"(got {args.min_pixels} and {args.max_pixels})")
    check_batch_size(args.batch_size)
    shard = parse_shard(args.shard)
    inputs = scan_input(args.input)  # a malformed annotations file stops the run before it starts
    with writer(args.dataset, shard):
        return describe_all(args, shard, inputs)


def describe_all(args: argparse.Namespace, shard, inputs: InputFolder) -> int:
    dataset = Dataset(args.dataset)
    paintings = [p for p in inputs.paintings if in_shard(p.id, shard)]
    settings = settings_of(args)
    captioner = Lazy(lambda: load_captioner(args.model, args.device, args.dtype, args.revision, **load_options(args)), STAGE)
    summary = StageSummary(STAGE)
    relabelled = []
    pending: list[PaintingInput] = []

    def flush() -> None:
        for painting, outcome in zip(pending, describe_batch(pending, args, captioner), strict=True):
            def work(outcome=outcome, painting=painting) -> Output:
                if isinstance(outcome, BaseException):
                    raise outcome
                for note in outcome.record.provenance["input"].get("notes", []):
                    tqdm.write(f"{painting.path.name}: {note}")
                return outcome

            attempt(dataset, STAGE, settings, painting.id, work,
                    lambda painting=painting: dataset.record(painting.id) if dataset.has_record(painting.id)
                    else new_record(painting), summary)
        pending.clear()

    for painting in progress(paintings, desc=STAGE, unit="painting"):
        existing = dataset.record(painting.id) if dataset.has_record(painting.id) else None
        if (not args.force and existing is not None and is_done(existing, STAGE, settings)
                and (input_of(existing) or {}).get("sha256") == fingerprint(painting.path)):
            if existing.annotations != painting.annotations:
                commit_painting(dataset, with_annotations(existing, painting.annotations))
                relabelled.append(painting.id)
            summary.skipped.append(painting.id)
            continue
        pending.append(painting)
        if len(pending) >= args.batch_size:
            flush()
    if pending:
        flush()
    models = {}
    if captioner.loaded:
        models["captioner"] = ModelRef(id=captioner.value.model_id, revision=captioner.value.revision)
    extra = {k: v for k, v in (("name", args.name), ("description", args.description)) if v}
    update_manifest(dataset, shard, models=models, prompt=args.prompt, settings={STAGE: settings}, **extra)
    lines = [summary.line()]
    if relabelled:
        lines.append(f"annotations changed for {len(relabelled)} painting(s): record updated, caption kept, "
                     f"metadata to be graded again: {', '.join(relabelled)}")
    if inputs.hidden:
        lines.append(f"skipped {len(inputs.hidden)} hidden file(s) (a name starting with a dot): "
                     f"{', '.join(inputs.hidden)}")
    if inputs.unmatched:
        lines.append(f"annotations for {len(inputs.unmatched)} name(s) match no image: {', '.join(inputs.unmatched)}")
    gone = vanished(dataset, {p.id for p in inputs.paintings}, lambda pid: in_shard(pid, shard))
    if gone:
        lines.append(f"{len(gone)} painting(s) of the dataset have no input file any more (kept; delete the "
                     f"folder paintings/<id> to drop one): {', '.join(f'{pid} ({name})' for pid, name in gone)}")
    print("\n".join(lines))
    return 1 if summary.failed else 0
