"""`make bench-cpu` runs the stages' own code on real-size models for ~15 minutes; its `--tiny`
mode runs the same code paths on tiny models, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tiny_run_times_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.cpu", "--tiny", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for stage in ("describe", "reliance", "spans", "spanmaps", "sam", "metadata"):
        assert re.search(rf"^{stage}\s+\d+\.\d", done.stdout, re.M), f"no timing line for {stage}"
    assert re.search(r"total per painting: \d+ s .*with --text-llm lexicon: \d+ s", done.stdout)
    assert json.loads(out.read_text())
