"""`tamscope reliance DATASET`: how much each generated token relied on the image.

Visual reliance of token t (Xing et al. 2025, "Where do Large Vision-Language Models Look at
when Answering Questions?", Eq. 5-6) is the log-likelihood ratio

    LLR_t = log P(a_t | a_<t, image, prompt) - log P(a_t | a_<t, blurred image, prompt)

The first term is describe's: it keeps log P(token | image) while generating the caption
(precompute.generation; tam_raw.safetensors `logp_image`), on the very image the caption was
generated from. So reliance runs one teacher-forced pass over prompt + caption (the token ids
describe generated, the same chat template through precompute.captioner_inputs), with a
strongly blurred copy of the canvas; only the LM-head rows at the T answer positions are
computed (logits_to_keep). A dataset described before describe kept log P (or with another
dtype than reliance loads) gets the second pass on the canvas too, as before
(`provenance.reliance.logp_image_from` says which). Log-sum-exps are taken in float64.

Decisions (docs/stages.md):
- Baseline image: cv2.GaussianBlur with sigma = `--blur` x the canvas's longer side (default
  0.1, i.e. about 100 px on a 1024-px canvas, kernel ~6 sigma). The paper uses a "fully blurred"
  image (I-GOS: kernel 51, sigma 50 on 224 px, an effective std of about 0.07 x the side); 0.1
  leaves only the colour layout at the scale of a fifth of the canvas, so no object, figure or
  brushstroke survives, while the image stays natural-looking (the paper's reason to prefer a
  blur over black or noise). Scaling with the canvas makes the blur the same for every size.
- Threshold alpha: the paper selects tokens with LLR > alpha but does not print alpha. Default
  1.0 nat: the value of the keyword selection in the public Qwen-VL adaptation of the authors'
  code (`find_keywords`: log p - log p_blur > 1.0); the token became e (2.7) times less likely
  without the image. `--threshold` changes it.
- The first generated token: the paper excludes it from the visually relevant set (k != 1)
  because it fixes the sentence structure and drops with any change of the image. We store its
  reliance (it is informative in the explorer) and set `visual` false for it.
- Values are rounded to 1e-4 nat (far below any meaningful difference) and `visual` is decided
  on the stored value, so the record is self-consistent.
The canvas is read from the dataset (canvas.jpg, the image the maps align to).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from contract.schema import PaintingRecord
from contract.store import Dataset
from precompute.captioner_inputs import batch_inputs, batch_teacher_forced_inputs
from precompute.lock import writer
from precompute.models import Lazy, load_captioner
from precompute.runner import (
    PaintingError,
    add_batch_option,
    add_model_options,
    add_run_options,
    check_batch_size,
    load_options,
    parse_shard,
    run_stage,
)

STAGE = "reliance"
DEFAULT_THRESHOLD = 1.0  # nats
DEFAULT_BLUR = 0.1  # sigma as a fraction of the canvas's longer side


def blurred(image: Image.Image, fraction: float) -> Image.Image:
    """The baseline image: Gaussian blur with sigma = fraction x longer side (0: unchanged)."""
    import cv2

    sigma = fraction * max(image.size)
    if sigma <= 0:
        return image.copy()
    pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    # ksize (0, 0): cv2 derives the kernel from sigma (about 6 sigma wide); reflected borders
    return Image.fromarray(cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                            borderType=cv2.BORDER_REFLECT_101))


LOGSUMEXP_ROWS = 64  # answer positions converted to float64 at once (64 x 151,936 x 8 bytes = 78 MB)


def answer_logprobs(captioner, image: Image.Image, prompt: str, generated: list[int]) -> np.ndarray:
    """(T,) log P(generated[t] | prompt, image, generated[:t]) from one teacher-forced pass.
    The log-sum-exp is taken in float64, as describe's (precompute.generation)."""
    return batch_logprobs(captioner, [(image, prompt, generated)])[0]


def batch_logprobs(captioner, jobs: list[tuple[Image.Image, str, list[int]]]) -> list[np.ndarray]:
    """answer_logprobs for B (image, prompt, generated) at once: one teacher-forced pass over the
    left-padded rows (precompute.captioner_inputs.batch_teacher_forced_inputs)."""
    import torch

    inputs = batch_inputs(captioner, [j[0] for j in jobs], [j[1] for j in jobs])
    forced = batch_teacher_forced_inputs(inputs, [j[2] for j in jobs])
    # left padding puts every row's answer at the end: row b's T_b tokens are the last T_b
    # positions, predicted by the logits of the T_b positions before them; keep the last T_max + 1
    keep = max(len(j[2]) for j in jobs) + 1
    out = []
    with torch.inference_mode():
        logits = captioner.model(**forced, logits_to_keep=keep).logits  # (B, T_max + 1, V), the model's dtype
        for b, (_, _, generated) in enumerate(jobs):
            n = len(generated)
            rows = logits[b, keep - 1 - n:keep - 1]  # (T_b, V)
            ids = torch.tensor(generated, device=rows.device)  # the head's device (--device-map)
            picked = rows.gather(1, ids[:, None])[:, 0].double()  # (T_b,)
            lse = torch.cat([chunk.double().logsumexp(-1) for chunk in rows.split(LOGSUMEXP_ROWS)])  # (T_b,)
            out.append((picked - lse).cpu().numpy())
    return out


def described_logprobs(dataset: Dataset, record: PaintingRecord, captioner) -> np.ndarray | None:
    """(T,) log P(token | image) as describe kept it while generating (tam_raw.safetensors
    `logp_image`), or None when it cannot stand for the with-image pass: a dataset described
    before describe kept it, other token ids, or another dtype than the one loaded here."""
    from safetensors import safe_open

    from precompute.stages.describe import LOGP_KEY

    path = dataset.painting_dir(record.id) / record.provenance.get("tam_raw", "tam_raw.safetensors")
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as raw:
        if LOGP_KEY not in raw.keys() or "token_ids" not in raw.keys():
            return None
        ids, logp = raw.get_tensor("token_ids"), raw.get_tensor(LOGP_KEY)
    described_dtype = record.provenance.get("captioner", {}).get("dtype")
    if described_dtype != str(captioner.dtype).replace("torch.", ""):
        return None
    if ids.tolist() != [t.id for t in record.tokens] or logp.shape != (len(record.tokens),):
        return None
    return logp.astype(np.float64)


def reliance_of(captioner, canvas: Image.Image, prompt: str, generated: list[int], blur: float,
                with_image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(log P with the canvas, log P with the blurred canvas, each (T,), where the first came
    from) for one painting, pass after pass (the stage batches them: process_batch; the tests
    and bench/cpu.py use this as the plain reference). with_image: describe's, when it kept it;
    else a teacher-forced pass on the canvas. Without blur the baseline is the canvas itself."""
    source = "describe"
    if with_image is None:
        with_image, source = answer_logprobs(captioner, canvas, prompt, generated), "teacher-forced pass"
    without = with_image.copy() if blur <= 0 else answer_logprobs(captioner, blurred(canvas, blur), prompt, generated)
    return with_image, without, source


def visual_flags(reliance: list[float], threshold: float) -> list[bool]:
    """LLR > alpha, never for the first token (the paper's k != 1)."""
    return [i > 0 and value > threshold for i, value in enumerate(reliance)]


def caption_ids(record: PaintingRecord, model_id: str, stage: str) -> list[int]:
    """The caption's token ids, to be scored by `model_id`: refused (PaintingError) when they are
    missing (imported data) or another model generated the caption."""
    generated = [t.id for t in record.tokens]
    if any(tid is None for tid in generated):
        raise PaintingError("the tokens have no tokenizer ids (imported data cannot be scored)")
    described_by = record.provenance.get("captioner", {}).get("id")
    if described_by is not None and described_by != model_id:
        raise PaintingError(f"the caption was generated by {described_by!r}, not {model_id!r}; "
                            f"{stage} must score it with the same model (--model)")
    return generated

def process(dataset: Dataset, captioner: Lazy, model_id: str, args: argparse.Namespace):
    """record -> record: one painting (process_batch with a batch of one)."""
    batch = process_batch(dataset, captioner, model_id, args)

    def apply(record: PaintingRecord) -> PaintingRecord:
        outcome, = batch([record])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return apply


def process_batch(dataset: Dataset, captioner: Lazy, model_id: str, args: argparse.Namespace):
    """records -> each one's new record or its error: the passes of the whole batch run as one
    left-padded batch (a painting's problem fails that painting only)."""

    def prepare(record: PaintingRecord):
        if not record.tokens or record.canvas is None or not record.prompt:
            raise PaintingError("no caption tokens, canvas or prompt to score")
        generated = caption_ids(record, model_id, STAGE)
        loaded = captioner.get()
        with Image.open(dataset.painting_dir(record.id) / record.canvas.path) as im:
            canvas = im.convert("RGB")
        return canvas, generated, described_logprobs(dataset, record, loaded)

    def apply(records: list[PaintingRecord]) -> list[PaintingRecord | Exception]:
        outcomes: list = [None] * len(records)
        todo, jobs = [], []  # (index, generated, stored, job of the canvas or None, job of the blur or None)
        for i, record in enumerate(records):
            try:
                canvas, generated, stored = prepare(record)
            except Exception as exc:  # noqa: BLE001 (recorded as this painting's failure)
                outcomes[i] = exc
                continue
            own = None
            if stored is None:  # described before describe kept log P: the with-image pass too
                own = len(jobs)
                jobs.append((canvas, record.prompt, generated))
            blur = None
            if args.blur > 0:
                blur = len(jobs)
                jobs.append((blurred(canvas, args.blur), record.prompt, generated))
            todo.append((i, generated, stored, own, blur))
        scores = score_jobs(captioner.value, jobs) if jobs else []
        for i, _generated, stored, own, blur in todo:
            try:
                outcomes[i] = scored(records[i], stored, own, blur, scores, args.threshold)
            except Exception as exc:  # noqa: BLE001
                outcomes[i] = exc
        return outcomes

    return apply


def score_jobs(captioner, jobs: list) -> list:
    """batch_logprobs of every job, or the error of each job that fails alone: a batch that
    raises is scored again one job at a time."""
    try:
        return batch_logprobs(captioner, jobs)
    except Exception as exc:  # noqa: BLE001
        if len(jobs) == 1:
            return [exc]
        return [score_jobs(captioner, [job])[0] for job in jobs]


def scored(record: PaintingRecord, stored, own, blur, scores: list, threshold: float) -> PaintingRecord:
    """The record with each token's reliance and visual flag (see the module docstring)."""
    for k in (own, blur):
        if k is not None and isinstance(scores[k], BaseException):
            raise scores[k]
    with_image = stored if own is None else scores[own]
    without = with_image.copy() if blur is None else scores[blur]  # no blur: the baseline is the canvas
    source = "describe" if own is None else "teacher-forced pass"
    values = [round(float(v), 4) + 0.0 for v in with_image - without]  # + 0.0: no "-0.0" in JSON
    for token, value, visual in zip(record.tokens, values, visual_flags(values, threshold), strict=True):
        token.reliance, token.visual = value, visual
    record.provenance[STAGE] = {  # the whole answer, as in the paper's Table 2
        "logp_image": round(float(with_image.sum()), 4), "logp_blurred": round(float(without.sum()), 4),
        "answer_llr": round(float(sum(values)), 4), "n_visual": sum(t.visual for t in record.tokens),
        "logp_image_from": source}
    return record


def captioner_id(args: argparse.Namespace, dataset: Dataset) -> str:
    """--model, else the captioner the dataset was described with."""
    if args.model:
        return args.model
    if dataset.has_manifest() and "captioner" in dataset.manifest().models:
        return dataset.manifest().models["captioner"].id
    from precompute.stages.describe import DEFAULT_MODEL

    return DEFAULT_MODEL


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=None,
                        help="the captioner that wrote the captions (default: the dataset's captioner)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="a token is visually relevant when its reliance exceeds this many nats")
    parser.add_argument("--blur", type=float, default=DEFAULT_BLUR,
                        help="blur sigma as a fraction of the canvas's longer side")
    add_model_options(parser)
    add_batch_option(parser)
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    check_batch_size(args.batch_size)
    dataset = Dataset(args.dataset)
    model_id = captioner_id(args, dataset)
    captioner = Lazy(lambda: load_captioner(model_id, args.device, args.dtype, args.revision, **load_options(args)), STAGE)
    settings = {"model": model_id, "revision": args.revision, "threshold": args.threshold, "blur": args.blur,
                "dtype": args.dtype, "first_token_visual": False}
    shard = parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, settings, process(dataset, captioner, model_id, args), shard=shard,
                            force=args.force, batch=process_batch(dataset, captioner, model_id, args),
                            batch_size=args.batch_size)
    return 1 if summary.failed else 0
