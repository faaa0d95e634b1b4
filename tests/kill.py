"""kill -9 a command at random moments while it commits paintings (for resume tests)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kill_repeatedly(cmd: list[str], env: dict, paintings: Path, times: int, max_delay: float,
                    after=lambda: None) -> list[float]:
    """Start `cmd` `times` times; each time wait until it creates an entry in `paintings` (a
    painting's staging folder: a commit begins), sleep a random delay up to max_delay, SIGKILL.
    `after()` runs after each kill. Returns the delays (for the failure message)."""
    rng, delays = random.Random(), []
    for _ in range(times):
        left = set(paintings.glob("*")) if paintings.is_dir() else set()  # the new run may repair these
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            now = set(paintings.glob("*")) if paintings.is_dir() else set()
            left &= now
            if now - left:
                break
            time.sleep(0.002)
        delays.append(rng.uniform(0, max_delay))
        time.sleep(delays[-1])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after()
    return delays
