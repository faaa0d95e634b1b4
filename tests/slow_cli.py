"""Test-only entry point: the tamscope CLI with a pause after each committed painting.

    python -m tests.slow_cli SECONDS[@STAGE] COMMAND ARGS...

installs a sleep of SECONDS (after every painting of STAGE only, if given) on the runner's
`after_painting` seam and runs `tamscope COMMAND ARGS...`, so a test's kill -9 lands mid-stage.
"""

from __future__ import annotations

import sys
import time

from precompute import runner
from tamscope.cli import main


def install(spec: str) -> None:
    seconds, _, only = spec.partition("@")

    def pause(stage: str, pid: str) -> None:
        if not only or stage == only:
            time.sleep(float(seconds))

    runner.after_painting.append(pause)


if __name__ == "__main__":
    install(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
