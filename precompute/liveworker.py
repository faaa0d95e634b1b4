"""The worker process of `tamscope serve --live`: the precompute stages for one painting per job.

The server (backend.live.jobs) starts this process with multiprocessing's spawn context and
sends it jobs over a queue; the server process itself never imports torch. Here, on the first
job, the captioner is loaded (and kept for the next jobs); each job then runs the precompute
stages on one painting of the `live` dataset folder, with the same code and the same contract
as `tamscope precompute`:

    describe    the caption (greedy, the job's prompt and --max-new-tokens, the image sized to the
                job's --max-pixels) and a TAM per token with the server's --tam-variant; each
                token is streamed as it is generated (a transformers streamer handed to
                precompute.stages.describe.caption_painting)
    spans       typed phrases: the text LLM, or the keyword lexicon (--text-llm lexicon)
    spanmaps    per-span maps and metrics
    sam         SAM 3 masks of the CVO/ICON phrases (only with --segmenter)

Each stage commits the painting as a whole (contract.commit), so a finished job is a normal
painting of a valid dataset, served after a restart like any other; a job cancelled or killed
during describe leaves nothing, one stopped later leaves the painting as its last stage made it.
The server holds the live folder's writer lock (precompute.lock) for its lifetime: this
process writes under it.

Progress goes back to the server as events on a queue: (job id, kind, data), kind one of
`stage`, `token`, `caption`, `maps`, `spans`, `sam`, `done`, `failed`, `cancelled`.
Cancellation is cooperative: the server writes the job's number into a shared value, checked
before every generated token and between stages (Cancelled, a BaseException, so that no
stage records it as the painting's failure); a worker that does not stop in time is killed.
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Emit = Callable[..., None]  # emit(kind, **data)


class Cancelled(BaseException):
    """The server asked this job to stop (cancel or time limit). A BaseException: the runner's
    per-painting error handling must not record it as the painting's failure."""


@dataclass(frozen=True)
class WorkerSettings:
    """What `tamscope serve --live` loads: as for precompute (docs/api.md, "Live questions")."""

    dataset: str  # the live dataset folder
    captioner: str
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    tam_variant: str = "reference"
    text_llm: str = "lexicon"  # a causal LM id or folder, or "lexicon"
    segmenter: str | None = None  # a SAM 3 id or folder; None: no SAM stage
    threads: int | None = None  # torch threads (None: torch's default, the machine's cores)
    nice: int = 10  # added to the process's niceness: the server's ordinary requests come first


@dataclass(frozen=True)
class JobSpec:
    """One question about one image. Everything here was checked by the server (backend.live)."""

    seq: int  # the server's job number: what the cancel value names
    id: str  # the painting id in the live dataset (made by the server, never by the client)
    image: bytes  # the image file, checked by the server with precompute.paintings.load_painting_bytes
    file_name: str  # the server's name for it, e.g. "<id>.png"
    prompt: str
    max_new_tokens: int
    max_pixels: int
    min_pixels: int
    annotations: dict = field(default_factory=dict)  # title, artist... (a served painting's, copied)
    source: dict = field(default_factory=dict)  # provenance.live: where the image came from


class TokenStream:
    """A transformers streamer (put/end, duck-typed as generate expects): each generated token's
    text, as precompute.stages.describe.token_texts gives it, the moment it is generated.

    generate calls put() first with the prompt's ids (1, P), then with each new token (batch,);
    `check` runs before each token and raises Cancelled to stop generation. `limit`: the caption's
    length in tokens; describe generates one token more (its log P needs the next step), which is
    not part of the caption and is not streamed."""

    def __init__(self, tokenizer, stops: set[int], emit: Emit, check: Callable[[], None], started: float,
                 limit: int):
        self.tok, self.stops, self.emit, self.check, self.started = tokenizer, stops, emit, check, started
        self.limit = limit
        self.ids: list[int] = []
        self.text = ""  # the caption decoded so far, complete characters only
        self.prompt_seen = False
        self.ended = False

    def put(self, value) -> None:
        self.check()
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for tid in value.reshape(-1)[:1].tolist():  # one sequence
            if self.ended or tid in self.stops or len(self.ids) >= self.limit:
                self.ended = True  # describe cuts the caption at the first end token
                continue
            self.ids.append(tid)
            current = self.tok.decode(self.ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            added = ""
            if not current.endswith("\ufffd") and current.startswith(self.text):
                added, self.text = current[len(self.text):], current  # a multi-byte character completes here
            self.emit("token", index=len(self.ids) - 1, text=added, t=round(time.monotonic() - self.started, 3))

    def end(self) -> None:
        self.emit("stage", stage="maps", tokens=len(self.ids), t=round(time.monotonic() - self.started, 3))


class Worker:
    """The models (loaded on first use, kept between jobs) and the job runner."""

    def __init__(self, settings: WorkerSettings, emit: Callable[[str, str, dict], None],
                 cancelled: Callable[[int], bool]):
        from precompute.models import Lazy, load_captioner
        from precompute.stages import sam as sam_stage
        from precompute.textllm import NO_LLM, TextLLM

        self.settings, self._emit, self._cancelled = settings, emit, cancelled
        s = settings
        self.captioner = Lazy(lambda: load_captioner(s.captioner, s.device, s.dtype, s.revision), "describe")
        self.llm = None if s.text_llm == NO_LLM else TextLLM(s.text_llm, s.device, s.dtype, None, 512, stage="spans")
        self.segmenter = None
        if s.segmenter:
            self.segmenter = sam_stage.Segmenter(argparse.Namespace(
                model=s.segmenter, device=s.device, dtype=s.dtype, revision=None, threshold=0.5, mask_threshold=0.5))

    def run(self, job: JobSpec) -> None:
        """Run one job; every outcome is an event (done, failed or cancelled)."""
        emit = lambda kind, **data: self._emit(job.id, kind, data)  # noqa: E731
        try:
            self.job(job, emit)
        except Cancelled:
            emit("cancelled")
        except Exception as exc:  # reported to the client; the worker goes on with the next job
            from precompute.runner import error_text

            traceback.print_exc()
            emit("failed", error=error_text(exc))

    def job(self, job: JobSpec, emit: Emit) -> None:
        from contract.commit import commit_painting
        from contract.inputs import PaintingInput
        from contract.schema import Annotations, ModelRef
        from contract.store import Dataset, utcnow
        from precompute.lock import update_manifest
        from precompute.runner import stamp
        from precompute.stages import describe

        started = time.monotonic()

        def check() -> None:
            if self._cancelled(job.seq):
                raise Cancelled()

        s, dataset = self.settings, Dataset(self.settings.dataset)
        if not self.captioner.loaded:
            emit("stage", stage="loading", t=0.0)
        model = self.captioner.get()
        check()
        emit("stage", stage="describe", t=round(time.monotonic() - started, 3))
        tok = model.processor.tokenizer
        stops = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
        eos = model.model.generation_config.eos_token_id
        stops |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        args = argparse.Namespace(model=s.captioner, revision=s.revision, dtype=s.dtype, prompt=job.prompt,
                                  max_new_tokens=job.max_new_tokens, tam_variant=s.tam_variant,
                                  min_pixels=job.min_pixels, max_pixels=job.max_pixels)
        with tempfile.TemporaryDirectory(prefix="tamscope-live-") as tmp:
            path = Path(tmp) / job.file_name
            path.write_bytes(job.image)
            painting = PaintingInput(id=job.id, path=path, annotations=Annotations(**job.annotations))
            streamer = TokenStream(tok, stops, emit, check, started, limit=job.max_new_tokens)
            out = describe.describe_one(painting, args, self.captioner, streamer=streamer)
        check()
        out.record.provenance["live"] = {**job.source, "asked": utcnow()}
        commit_painting(dataset, stamp(out.record, describe.STAGE, describe.settings_of(args)), out.files)
        emit("caption", text=out.record.caption, tokens=len(out.record.tokens), t=round(time.monotonic() - started, 3))
        emit("maps", painting=job.id, tokens=len(out.record.tokens), t=round(time.monotonic() - started, 3))
        models = {"captioner": ModelRef(id=model.model_id, revision=model.revision)}
        settings = {describe.STAGE: describe.settings_of(args)}
        try:
            for stage, run in self.later_stages(dataset):
                check()
                emit("stage", stage=stage, t=round(time.monotonic() - started, 3))
                settings[stage], model_ref, event = run(job.id)
                if model_ref is not None:
                    models[model_ref[0]] = model_ref[1]
                if event is not None:
                    emit(event[0], **event[1])
            check()
        finally:  # the painting is committed: listed in the manifest even if the job stops here
            update_manifest(dataset, None, models=models, settings=settings)
        emit("done", painting=job.id, t=round(time.monotonic() - started, 3))

    def later_stages(self, dataset):
        """(stage, run(pid) -> (settings, (role, ModelRef) or None, event or None)) after describe."""
        from contract.schema import ModelRef
        from precompute.runner import run_stage
        from precompute.stages import sam as sam_stage
        from precompute.stages import spanmaps, spans

        def run_spans(pid: str):
            lexicon = self.llm is None
            settings = {"model": self.settings.text_llm, "revision": None, "retries": 2,
                        "max_new_tokens": 512, "prompt": None if lexicon else spans.INSTRUCTIONS}
            run_stage(spans.STAGE, dataset, settings, spans.process(None if lexicon else self.llm.generate, 2, {}),
                      ids=[pid], refresh_manifest=False)
            record = dataset.record(pid)
            ref = ModelRef(id=spans.LEXICON_ID, revision="built-in") if lexicon else (
                self.llm.ref() if self.llm.loaded else None)
            found = [{"index": s.index, "text": s.text, "category": getattr(s.category, "value", s.category), "tokens": s.tokens}
                     for s in record.spans]
            return settings, ("span_classifier", ref) if ref else None, ("spans", {"spans": found})

        def run_spanmaps(pid: str):
            settings = {"how": "mean"}
            run_stage(spanmaps.STAGE, dataset, settings, spanmaps.process(dataset, "mean"), ids=[pid],
                      needs="spans", refresh_manifest=False)
            return settings, None, ("spanmaps", {"painting": pid})

        def run_sam(pid: str):
            settings = {"model": self.settings.segmenter, "revision": None, "threshold": 0.5, "mask_threshold": 0.5}
            run_stage(sam_stage.STAGE, dataset, settings, sam_stage.process(dataset, self.segmenter), ids=[pid],
                      needs="spanmaps", refresh_manifest=False)
            record = dataset.record(pid)
            masks = sum(1 for s in record.spans if s.sam is not None and s.sam.mask is not None)
            ref = ("segmenter", self.segmenter.ref()) if self.segmenter.loaded else None
            return settings, ref, ("sam", {"painting": pid, "masks": masks})

        stages = [("spans", run_spans), ("spanmaps", run_spanmaps)]
        if self.segmenter is not None:
            stages.append(("sam", run_sam))
        return stages


def serve(settings: WorkerSettings, jobs, events, cancel_seq, parent: int) -> None:
    """The process's entry point (a spawn target): run jobs from `jobs` until None arrives or the
    server process is gone. `events` gets (job id, kind, data); `cancel_seq` (a shared integer)
    holds the number of the job the server wants stopped."""
    if settings.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.threads))
    if settings.nice:  # before torch starts its threads: they inherit it. The model takes the CPU
        os.nice(settings.nice)  # the server leaves: a question never slows the explorer down
    emit = lambda job_id, kind, data: events.put((job_id, kind, data))  # noqa: E731
    worker = Worker(settings, emit, lambda seq: cancel_seq.value == seq)
    events.put((None, "ready", {"pid": os.getpid()}))
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the server died (even by kill -9): nobody will read our events
                return
            continue
        if job is None:
            return
        worker.run(job)
