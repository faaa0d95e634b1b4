"""A stand-in for precompute.liveworker.serve (the same signature and events, no model), for the
tests of the job queue, its bounds and the upload checks: spawned like the real worker, it
"generates" one token every 50 ms. Its behaviour is named by the job's prompt:
    quick   three tokens, then done (no painting: nothing is written)
    slow    tokens until cancelled (it stops at the next token, as the real worker does)
    hang    tokens and never looks at the cancel value (the server must kill it)
"""

from __future__ import annotations

import os
import queue
import time


def serve(settings, jobs, events, cancel_seq, parent) -> None:
    events.put((None, "ready", {"pid": os.getpid()}))
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if job is None:
            return
        events.put((job.id, "stage", {"stage": "describe", "t": 0.0}))
        n = 0
        while True:
            if job.prompt != "hang" and cancel_seq.value == job.seq:
                events.put((job.id, "cancelled", {}))
                break
            if job.prompt == "quick" and n == 3:
                events.put((job.id, "done", {"t": 0.2}))
                break
            events.put((job.id, "token", {"index": n, "text": f" w{n}", "t": 0.05 * n}))
            n += 1
            time.sleep(0.05)
