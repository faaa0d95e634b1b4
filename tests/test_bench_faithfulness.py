"""`make bench-faithfulness` times the faithfulness stage's passes on real Qwen2-VL-2B; its
`--tiny` mode runs the same code on the tiny model, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.faithfulness import passes_per_span

REPO = Path(__file__).resolve().parents[1]


def test_passes_per_span_by_hand():
    table = passes_per_span(steps=10, iterations=10, ig_steps=5)
    assert table["igos"] == (18, 100)  # 2 x 9 curve images; 10 iterations x (deletion + insertion) x 5 points
    assert table["gradient"] == (18, 1)
    assert passes_per_span(steps=1, iterations=1, ig_steps=1)["attention"] == (0, 0)


def test_tiny_run(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.faithfulness", "--tiny", "--caption-tokens", "16",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["flops_forward"] > 0 and results["forward_1"]["seconds"] > 0
    assert [r["method"] for r in results["per_span"]][-1] == "igos"
    assert "ESTIMATE" in done.stdout


def test_a_pass_that_does_not_fit_fails_inside_the_benchmark():
    """The real-size forward + backward can need more memory than the machine has free: capped, it
    fails with a reason instead of the kernel killing the whole run, and the cap is lifted after."""
    import resource

    import numpy as np

    from bench.faithfulness import within_memory

    before = resource.getrlimit(resource.RLIMIT_AS)
    reason = within_memory(lambda: np.ones(2**28), 64 * 2**20)  # 2 GiB asked for, 64 MiB allowed
    assert reason is not None and "MemoryError" in reason
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert within_memory(lambda: np.ones(2**10), 64 * 2**20) is None
    assert np.ones(2**26).sum() == 2**26  # 512 MiB: allowed again
