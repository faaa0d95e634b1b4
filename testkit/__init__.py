"""What the tests and the benchmarks share (neither imports the other): the synthetic
dataset built in code, servers on free ports, the system Chromium, the plain-loop reference
implementations the vectorised code is checked against, reference paths."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# real published data lives beside the checkout (../shared), never in it: users of these
# paths skip with a clear message where it is absent
SHARED = REPO.parent / "shared"
TAMART_SAMPLE = SHARED / "reference" / "tamart-site-sample"
