"""The job queue of live mode and the one worker process behind it.

One job runs at a time; at most `queue` more wait (a full queue is refused with a retry hint).
The worker (precompute.liveworker.serve) is started with multiprocessing's spawn context on the
first job, so this process never imports torch; it loads its models on its first job and keeps
them. A reader thread per worker passes the worker's events to the event loop, where one task
handles them in order: a job's events are kept (an SSE client that connects late, or
reconnects with Last-Event-ID, gets them all) and, when a stage has committed the painting, the
painting is put into the served live dataset *before* the event is published, so a client
that hears "maps" can fetch the maps at once.

Bounds: a job's time limit counts from the moment its model is loaded; cancel (or the time
limit) asks the worker to stop at its next token or stage, and a worker that has not stopped
`cancel_grace` seconds later is killed (its interrupted commit is repaired, contract.commit) and
a new one is started for the next job. A worker that dies fails its job the same way.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend.live.settings import LiveSettings

log = logging.getLogger("tamscope.serve")

TERMINAL = ("done", "failed", "cancelled", "expired")
KEEP_FINISHED = 200  # finished jobs remembered for their status and events


@dataclass(frozen=True)
class Event:
    id: int  # its position in the job's events: the SSE id
    kind: str
    data: dict


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; try again in about {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    seq: int
    id: str  # also the painting's id in the live dataset
    prompt: str
    max_new_tokens: int
    max_pixels: int
    source: dict
    spec: object = None  # the JobSpec until it is handed to the worker
    status: str = "queued"  # queued, running, done, failed, cancelled, expired
    stage: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    tokens: int = 0
    painting: str | None = None  # in the live dataset, once describe committed it
    error: str | None = None
    stopping: str | None = None  # "cancelled" or "expired" once asked to stop
    events: list[Event] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def publish(self, kind: str, **data) -> None:
        self.events.append(Event(len(self.events), kind, data))
        woken, self.wakeup = self.wakeup, asyncio.Event()
        woken.set()


@dataclass
class Timings:
    """What finished jobs took, for honest estimates (the explorer shows them): seconds."""

    load: float | None = None  # loading the models (the first job only)
    first_token: float | None = None  # from the start of describe to the first token (prefill)
    per_token: float | None = None  # between two generated tokens
    after_caption: float | None = None  # from the last token to done (TAM, spans, SAM, commits)

    def update(self, marks: dict[str, float], tokens: int) -> None:
        def mix(old, new):  # recent jobs count most (another image size, another prompt)
            return new if old is None else 0.5 * old + 0.5 * new

        if "loading" in marks and "describe" in marks:
            self.load = marks["describe"] - marks["loading"]
        if "first" in marks and "describe" in marks:
            self.first_token = mix(self.first_token, marks["first"] - marks["describe"])
        if tokens > 1 and "first" in marks and "last" in marks:
            self.per_token = mix(self.per_token, (marks["last"] - marks["first"]) / (tokens - 1))
        if "last" in marks and "done" in marks:
            self.after_caption = mix(self.after_caption, marks["done"] - marks["last"])

    def job_seconds(self, tokens: int) -> float | None:
        parts = (self.first_token, self.per_token, self.after_caption)
        return None if None in parts else self.first_token + self.per_token * tokens + self.after_caption


def new_job_id() -> str:
    """ask-20261202-180512-3fa9c1: sortable by time, unguessable enough, a valid painting id."""
    return f"ask-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class JobManager:
    """Jobs and the worker. Methods run on the event loop; `on_commit(pid)` (awaited) puts a
    committed painting into the served dataset. `target` is the worker's entry point (a seam:
    tests pass a stand-in; it must be importable by the spawned process)."""

    def __init__(self, settings: LiveSettings, on_commit: Callable, target: Callable | None = None):
        self.settings, self.on_commit = settings, on_commit
        if target is None:
            from precompute.liveworker import serve as target  # stdlib only at import time: no torch
        self.target = target
        self.ctx = multiprocessing.get_context("spawn")
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.waiting: deque[Job] = deque()
        self.running: Job | None = None
        self.seq = 0
        self.timings = Timings()
        self.marks: dict[str, float] = {}  # of the running job: monotonic times of its milestones
        self.proc = None
        self.generation = 0  # of the worker process: events of a killed one are ignored
        self.jobs_q = self.events_q = None
        self.cancel_seq = self.ctx.Value("q", -1, lock=False)
        self.inbox: asyncio.Queue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.consumer: asyncio.Task | None = None

    # -- the client's side ---------------------------------------------------------------------

    def submit(self, spec_of: Callable[[int, str], object], prompt: str, max_new_tokens: int, max_pixels: int,
               source: dict) -> Job:
        """A new job (its JobSpec made by spec_of(seq, id)), started at once or queued; QueueFull."""
        self._attach()
        if self.running is not None and len(self.waiting) >= self.settings.queue:
            raise QueueFull(self.retry_after())
        self.seq += 1
        job_id = new_job_id()
        while job_id in self.jobs:
            job_id = new_job_id()
        job = Job(self.seq, job_id, prompt, max_new_tokens, max_pixels, source, spec=spec_of(self.seq, job_id))
        self.jobs[job_id] = job
        self.waiting.append(job)
        job.publish("queued", position=len(self.waiting) - (0 if self.running is not None else 1))
        self._forget_old()
        self._next()
        return job

    def cancel(self, job: Job, why: str = "cancelled") -> None:
        if job.terminal or job.stopping:
            return
        if job in self.waiting:
            self.waiting.remove(job)
            self._finish(job, why, error="cancelled before it started")
            return
        job.stopping = why
        self.cancel_seq.value = job.seq  # the worker checks it before each token and stage
        self.loop.call_later(self.settings.cancel_grace, self._force_stop, job.seq)

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely free (at least 5, at most 10 minutes)."""
        each = self.timings.job_seconds(self.settings.max_new_tokens) or 60.0
        return int(min(600, max(5, each)))

    def position(self, job: Job) -> int | None:
        return list(self.waiting).index(job) + 1 if job in self.waiting else None

    def state(self) -> dict:
        return {"running": self.running.id if self.running else None, "waiting": len(self.waiting),
                "queue": self.settings.queue, "worker": "up" if self.proc is not None and self.proc.is_alive()
                else "down", "timings": {k: (round(v, 3) if v is not None else None)
                                         for k, v in vars(self.timings).items()}}

    # -- the worker ----------------------------------------------------------------------------

    def _attach(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.inbox = asyncio.Queue()
            self.consumer = self.loop.create_task(self._consume())

    def _start_worker(self) -> None:
        self.generation += 1
        self.jobs_q, self.events_q = self.ctx.Queue(), self.ctx.Queue()
        self.proc = self.ctx.Process(target=self.target, name="tamscope-live-worker", daemon=True,
                                     args=(self.settings.worker_settings(), self.jobs_q, self.events_q,
                                           self.cancel_seq, os.getpid()))
        self.proc.start()
        threading.Thread(target=self._read, args=(self.proc, self.events_q, self.generation),
                         name="tamscope-live-events", daemon=True).start()
        log.info("live: worker process %d started", self.proc.pid)

    def _read(self, proc, events_q, generation: int) -> None:
        """(thread) The worker's events to the loop, until the worker is gone."""
        while True:
            try:
                message = events_q.get(timeout=0.5)
            except queue.Empty:
                if not proc.is_alive():
                    self._post(generation, (None, "exit", {"code": proc.exitcode}))
                    return
                continue
            except (EOFError, OSError, ValueError):  # the queue closed under us
                self._post(generation, (None, "exit", {"code": proc.exitcode}))
                return
            self._post(generation, message)

    def _post(self, generation: int, message) -> None:
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, (generation, message))
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _next(self) -> None:
        if self.running is not None or not self.waiting:
            return
        job = self.waiting.popleft()
        if self.proc is None or not self.proc.is_alive():
            self._start_worker()
        self.running, job.status, job.started = job, "running", time.time()
        self.marks = {}
        self.jobs_q.put(job.spec)
        job.spec = None  # the image goes to the worker; the server keeps nothing of it
        job.publish("running")
        for place, other in enumerate(self.waiting, 1):
            other.publish("queued", position=place)

    async def _consume(self) -> None:
        while True:
            generation, (job_id, kind, data) = await self.inbox.get()
            try:
                if generation == self.generation:
                    await self._handle(job_id, kind, data)
            except Exception:  # one bad event must not stop the queue
                log.exception("live: handling worker event %s", kind)

    async def _handle(self, job_id: str | None, kind: str, data: dict) -> None:
        job = self.running
        if kind == "exit":
            self.proc = None
            if job is not None:
                self._finish(job, job.stopping or "failed",
                             error=f"the worker process ended (exit code {data['code']}); the next job starts a new one")
                await self._repair()
            return
        if job is None or job.id != job_id:
            return
        now = time.monotonic()
        if kind == "stage":
            job.stage = data["stage"]
            self.marks.setdefault(data["stage"], now)
            if data["stage"] != "loading" and job.timer is None:  # the time limit counts from here
                job.timer = self.loop.call_later(self.settings.time_limit, self._expire, job.seq)
        elif kind == "token":
            job.tokens += 1
            self.marks.setdefault("first", now)
            self.marks["last"] = now
        elif kind == "maps":
            job.painting = data["painting"]
        if kind in ("maps", "spanmaps", "sam", "done") and job.painting:
            await self.on_commit(job.painting)  # served before anyone hears of it
        if kind in ("done", "failed", "cancelled"):
            if kind == "done":
                self.marks["done"] = now
                self.timings.update(self.marks, job.tokens)
            status = job.stopping if kind == "cancelled" and job.stopping else kind
            self._finish(job, status, error=data.get("error"), extra=data)
            return
        job.publish(kind, **data)

    def _finish(self, job: Job, status: str, error: str | None = None, extra: dict | None = None) -> None:
        if job.timer is not None:
            job.timer.cancel()
        job.status, job.finished, job.stage = status, time.time(), None
        if status == "expired":
            error = f"stopped at the time limit of {self.settings.time_limit:g} s"
        job.error = error if status != "done" else None
        data = {k: v for k, v in (extra or {}).items() if k != "error"}
        data |= {"error": job.error} if job.error else {}
        data |= {"painting": job.painting} if job.painting else {}
        job.publish(status, **data)
        if self.running is job:
            self.running = None
            self._next()

    def _expire(self, seq: int) -> None:
        if self.running is not None and self.running.seq == seq:
            self.cancel(self.running, "expired")

    def _force_stop(self, seq: int) -> None:
        """The worker did not stop in time: kill it; the next job starts another."""
        job = self.running
        if job is None or job.seq != seq or job.terminal:
            return
        log.warning("live: job %s did not stop within %g s: killing the worker", job.id, self.settings.cancel_grace)
        proc, self.proc = self.proc, None
        self.generation += 1  # what it still sends is ignored
        if proc is not None:
            proc.kill()
        self.loop.create_task(self._after_kill(job, proc))

    async def _after_kill(self, job: Job, proc) -> None:
        if proc is not None:
            await asyncio.to_thread(proc.join, 10)
        await self._repair()
        if job.painting:  # a later stage was interrupted: serve what is on disk
            await self.on_commit(job.id)
        self._finish(job, job.stopping or "failed")

    async def _repair(self) -> None:
        """Finish or undo a commit the killed worker left half done (contract.commit.recover)."""
        from contract.commit import recover
        from contract.store import Dataset

        repaired = await asyncio.to_thread(recover, Dataset(self.settings.dataset))
        for line in repaired:
            log.info("live: repaired %s", line)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.terminal]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self.jobs[job.id]

    def close(self) -> None:
        """Stop the worker (the server is stopping)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            self.jobs_q.put(None)
            proc.join(5)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
