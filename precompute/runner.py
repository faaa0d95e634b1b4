"""Run one stage over the paintings of a dataset: resumable, atomic, with a progress bar.

A stage is a function `record -> record` (or -> Output, when it also writes files). The runner
- skips paintings whose record already carries this stage's stamp with the same settings
  (so a re-run after a crash or Ctrl-C resumes where it stopped, and changed settings redo),
- commits each painting's new record and files as one step right after the painting is done
  (contract.commit: a kill leaves the old painting or the new one, never a mix),
- catches a painting's error and appends it to that painting's `failures` in the record as it
  is on disk: a failed re-run keeps the earlier result (caption, spans, files, stamp),
- clears the stamps of the stages that read this one's output (DOWNSTREAM), so re-typed spans
  get new span maps, SAM masks and metadata verdicts on the next run,
- refreshes the manifest (painting list, failures, the stage's settings) at the end; a shard
  run sets the settings alone and leaves the painting list to `merge` (precompute.lock).
Stage commands hold the dataset's writer lock (precompute.lock) around all of this.
It imports no torch: stages load their models lazily, on the first painting that needs them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tqdm import tqdm

from contract.commit import commit_painting
from contract.schema import Failure, PaintingRecord, StageStamp
from contract.store import Dataset, utcnow
from precompute.lock import update_manifest
from precompute.progress import progress
from precompute.shards import ShardError, in_shard, parse_shard  # noqa: F401 (the stages import them from here)


@dataclass
class Output:
    """What a stage made of one painting: the new record and the files it references that are
    new or changed (relative path -> bytes). Nothing is written until the runner commits both."""

    record: PaintingRecord
    files: dict[str, bytes] = field(default_factory=dict)


StageFn = Callable[[PaintingRecord], PaintingRecord | Output]
# A batch of records -> each one's result or its error (in order); a batch that raises as a
# whole is done again one record at a time, so one painting's problem fails that painting only.
BatchFn = Callable[[list[PaintingRecord]], list[PaintingRecord | Output | BaseException]]

# Called with (stage, painting id) after each painting is committed. A seam for observers:
# tests add a sleep here to widen the window in which their kill -9 lands (tests/slow_cli.py).
after_painting: list[Callable[[str, str], None]] = []


class PaintingError(Exception):
    """A problem with one painting's input (corrupt image, malformed model output...).

    Its message is recorded as is; other exceptions are recorded with their type name.
    `provenance` is merged into the failed painting's record (e.g. the raw LLM answers that
    could not be used, so they can be inspected).
    """

    def __init__(self, message: str, provenance: dict | None = None):
        super().__init__(message)
        self.provenance = provenance or {}


class StopStage(PaintingError):
    """A painting's failure after which this process cannot go on with the others (e.g. out of
    memory: torch's CPU kernels may stay broken after a failed allocation). It is recorded as the
    painting's failure, then the stage stops: the paintings not reached are left as they were, for
    a later run (with other settings) to resume."""


# stage -> the stages computed from its output; a new result makes their stamps stale
DOWNSTREAM = {
    "describe": ("reliance", "spans", "spanmaps", "sam", "metadata", "faithfulness"),
    "reliance": ("faithfulness",),  # the visually relevant tokens iGOS++ scores
    "spans": ("spanmaps", "sam", "metadata", "faithfulness"),
    "spanmaps": ("sam",),
}


@dataclass
class StageSummary:
    stage: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done with these settings
    failed: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # failed, their earlier result kept
    waiting: list[str] = field(default_factory=list)  # the stage they need has not run (or failed)
    needs: str | None = None
    stopped: str | None = None  # why the stage stopped before the end (StopStage)

    def line(self) -> str:
        text = f"{self.stage}: {len(self.done)} done, {len(self.skipped)} already done, {len(self.failed)} failed"
        if self.stopped:
            text += ", stopped before the others (run it again to resume)"
        if self.kept:
            text += f" ({len(self.kept)} keep their earlier result)"
        if self.waiting:
            text += f", {len(self.waiting)} waiting for {self.needs}"
        by_error: dict[str, list[str]] = {}  # one line per distinct error (a missing model fails them all)
        for pid, err in self.failed.items():
            by_error.setdefault(err, []).append(pid)
        return text + "".join(f"\n  {', '.join(pids)}: {err}" for err, pids in by_error.items())


def add_model_options(parser) -> None:
    """--revision, --device, --dtype, --offline, --device-map: how every model-running stage loads
    its model (`load_options` turns the last two into the loaders' keyword arguments)."""
    parser.add_argument("--revision", default=None, help="model revision (hub commit, branch or tag)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on a GPU, float32 on the CPU), float32, "
                                                        "bfloat16, float16, float64")
    parser.add_argument("--offline", action="store_true",
                        help="models from this machine only (folder or hub cache), never the network; without it "
                             "a hub id downloads when the hub answers within seconds (docs/precompute.md)")
    parser.add_argument("--device-map", default=None,
                        help="spread a large model with accelerate: auto (the GPUs there are, then CPU memory, then "
                             "disk), balanced, sequential, or a JSON object {module: device}; --device is then "
                             "ignored (docs/models.md)")


def load_options(args) -> dict:
    """The loaders' keyword arguments from add_model_options: offline, device_map."""
    from precompute.placement import parse_device_map

    return {"offline": getattr(args, "offline", False),
            "device_map": parse_device_map(getattr(args, "device_map", None))}


def add_batch_option(parser) -> None:
    """--batch-size: paintings a model-running stage puts through its model at once (a GPU's
    throughput grows with it; on a CPU 1 is as fast). One option of `tamscope precompute`."""
    parser.add_argument("--batch-size", type=int, default=1,
                        help="paintings run through the model at once (left-padded; 1 on a CPU, 4-16 on a GPU)")


def check_batch_size(n: int) -> int:
    if n < 1:
        raise SystemExit(f"--batch-size must be at least 1 (got {n})")
    return n


def add_run_options(parser, what: str = "paintings already done with the same settings") -> None:
    """--shard, --force: what every per-painting stage takes."""
    parser.add_argument("--shard", default=None, help="K/N: only the paintings of shard K of N (then `tamscope merge`)")
    parser.add_argument("--force", action="store_true", help=f"redo {what}")


def error_text(exc: BaseException) -> str:
    if isinstance(exc, PaintingError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def stamp(record: PaintingRecord, stage: str, settings: dict) -> PaintingRecord:
    record.stages[stage] = StageStamp(settings=settings, finished=utcnow())
    for later in DOWNSTREAM.get(stage, ()):
        record.stages.pop(later, None)
    record.failures = [f for f in record.failures if f.stage != stage]
    return record


def record_failure(record: PaintingRecord, stage: str, exc: BaseException) -> PaintingRecord:
    """Append the failure to the record as it is: an earlier result and its stamp stay (the
    stamp's settings say what made the data that is there; a new attempt replaces both)."""
    record.failures = [f for f in record.failures if f.stage != stage]
    record.failures.append(Failure(stage=stage, error=error_text(exc), time=utcnow()))
    if isinstance(exc, PaintingError):
        record.provenance.update(exc.provenance)
    return record


def is_done(record: PaintingRecord, stage: str, settings: dict) -> bool:
    done = record.stages.get(stage)
    return done is not None and done.settings == settings


def attempt(dataset: Dataset, stage: str, settings: dict, pid: str, work: Callable[[], PaintingRecord | Output],
            before: Callable[[], PaintingRecord], summary: StageSummary, verbose_errors: bool = False) -> None:
    """Do one painting's `work` and commit it stamped; on an error, commit `before()` (the record
    as it is on disk, or a fresh one for a new painting) with the failure appended."""
    try:
        out = work()
        out = out if isinstance(out, Output) else Output(out)
        commit_painting(dataset, stamp(out.record, stage, settings), out.files)
        summary.done.append(pid)
    except Exception as exc:  # one painting's failure never stops the stage
        if verbose_errors:
            traceback.print_exc()
        record = before()
        commit_painting(dataset, record_failure(record, stage, exc))
        summary.failed[pid] = error_text(exc)
        if stage in record.stages:
            summary.kept.append(pid)
        if isinstance(exc, StopStage):  # run_stage goes no further
            summary.stopped = error_text(exc)
    for observe in after_painting:
        observe(stage, pid)


def batch_outcomes(batch: BatchFn, one: StageFn, records: list[PaintingRecord]) -> list:
    """batch(records), or, when the batch raises as a whole, one(record) for each record."""
    try:
        outcomes = batch(records)
        if len(outcomes) != len(records):
            raise RuntimeError(f"a batch of {len(records)} gave {len(outcomes)} results")
        return outcomes
    except Exception:  # noqa: BLE001 (isolate the painting that breaks the batch)
        results: list = []
        for record in records:
            try:
                results.append(one(record))
            except Exception as exc:  # noqa: BLE001
                results.append(exc)
        return results


def _unwrap(outcome):
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def run_stage(
    stage: str,
    dataset: Dataset,
    settings: dict,
    process: StageFn,
    *,
    ids: Iterable[str] | None = None,
    shard: tuple[int, int] | None = None,
    force: bool = False,
    needs: str | None = "describe",
    verbose_errors: bool = False,
    refresh_manifest: bool = True,
    batch: BatchFn | None = None,
    batch_size: int = 1,
) -> StageSummary:
    """Apply `process` to every painting record of `dataset` not yet done with `settings`.

    `needs`: the stage whose output this one reads; paintings without it are skipped.
    `batch`, `batch_size`: with batch_size > 1, the records go through `batch` that many at a
    time; each is then committed (or its failure recorded) on its own, as with `process`.
    """
    summary = StageSummary(stage, needs=needs)
    pids = [pid for pid in (ids if ids is not None else dataset.painting_ids()) if in_shard(pid, shard)]
    pending: list[PaintingRecord] = []

    def flush() -> None:
        outcomes = batch_outcomes(batch, process, pending)
        for record, outcome in zip(pending, outcomes, strict=True):
            attempt(dataset, stage, settings, record.id, lambda outcome=outcome: _unwrap(outcome),
                    lambda pid=record.id: dataset.record(pid), summary, verbose_errors)
        pending.clear()

    for pid in progress(pids, desc=stage, unit="painting", leave=False):
        if summary.stopped:  # a StopStage failure: the rest wait for another run
            break
        record = dataset.record(pid)
        if needs and needs not in record.stages:
            summary.waiting.append(pid)
            continue
        if not force and is_done(record, stage, settings):
            summary.skipped.append(pid)
            continue
        if batch is None or batch_size <= 1:
            attempt(dataset, stage, settings, pid, lambda record=record: process(record),
                    lambda pid=pid: dataset.record(pid), summary, verbose_errors)
            continue
        pending.append(record)
        if len(pending) >= batch_size:
            flush()
    if pending and not summary.stopped:
        flush()
    if refresh_manifest:
        update_manifest(dataset, shard, settings={stage: settings})
    tqdm.write(summary.line())
    return summary
