"""`tamscope submit` on a real SLURM cluster: a private single-node cluster (tests/slurm_cluster.py)
runs a 2-task array with the tiny models; one task is cancelled mid-run and submitted again alone,
and the merge gives the dataset of one unsharded run, byte for byte. Skips where SLURM cannot run
(not installed: `make slurm`; not root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from contract.inputs import scan_input
from contract.store import Dataset
from precompute.shards import in_shard
from tests.slurm_cluster import single_node_cluster, unavailable
from tests.test_pipeline import EPOCH, REPO, assert_same_files, precompute_argv, run_precompute

WHY_NOT = unavailable()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(WHY_NOT is not None, reason=f"no SLURM cluster: {WHY_NOT}")]


@pytest.fixture(scope="module")
def cluster():
    with single_node_cluster() as running:
        yield running


def task(tasks: list[dict], k: int) -> dict:
    return next(t for t in tasks if t.get("ArrayTaskId") == str(k))


def test_an_array_killed_resubmitted_and_merged_equals_one_run(cluster, tmp_path, tiny_qwen2vl_dir, tiny_sam3_dir):
    from precompute.smoke import write_smoke_paintings

    paintings = write_smoke_paintings(tmp_path / "paintings")
    reference = tmp_path / "reference"
    assert run_precompute(precompute_argv(paintings, reference, tiny_qwen2vl_dir, tiny_sam3_dir)) == 0

    # the jobs get this environment (sbatch passes it on): no thread count of its own, timestamps pinned
    env = {k: v for k, v in cluster.env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(SOURCE_DATE_EPOCH=EPOCH, PYTHONPATH=str(REPO))
    out = tmp_path / "ds"
    options = precompute_argv(paintings, out, tiny_qwen2vl_dir, tiny_sam3_dir)[2:]
    submitted = subprocess.run([sys.executable, "-m", "tamscope.cli", "submit", str(paintings), str(out),
                                "--shards", "2", "--time", "00:15:00", *options],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    array, merge = re.findall(r"submitted job (\d+)", submitted.stdout)
    logs = tmp_path / "ds.slurm" / "logs"

    # cancel shard 1 once it has described a painting: mid-run, with work left
    shard_1 = [p.id for p in scan_input(paintings).paintings if in_shard(p.id, (1, 2))]
    deadline = time.monotonic() + 300
    while not any(Dataset(out).has_record(pid) for pid in shard_1):
        assert time.monotonic() < deadline, f"shard 1 described nothing: {cluster.jobs(array)}\n{cluster.logs()}"
        time.sleep(0.05)
    cluster.run("scancel", f"{array}_1")

    tasks = cluster.wait(array)
    assert (task(tasks, 0)["JobState"], task(tasks, 0)["ExitCode"]) == ("COMPLETED", "0:0")
    assert task(tasks, 1)["JobState"] == "CANCELLED"
    records = [Dataset(out).record(pid) for pid in shard_1 if Dataset(out).has_record(pid)]
    assert len(records) < len(shard_1) or any("metadata" not in r.stages for r in records), \
        "shard 1 finished before it was cancelled"

    merged = cluster.wait(merge)[0]  # afterany: it runs after the cancelled task, and says what is missing
    assert (merged["JobState"], merged["ExitCode"]) == ("FAILED", "1:0")
    assert "not finished" in (logs / f"merge-{merge}.log").read_text()

    script = tmp_path / "ds.slurm" / "precompute.sbatch"
    wrong = cluster.sbatch("--array=2", str(script), env=env)  # no shard 2 of 2: a message, nothing processed
    assert cluster.wait(wrong)[0]["ExitCode"] == "2:0"
    assert "array task 2 is no shard of this script" in (logs / f"precompute-{wrong}_2.log").read_text()

    again = cluster.sbatch("--array=1", str(script), env=env)  # shard 1 alone: it resumes
    merge_again = cluster.sbatch(f"--dependency=afterany:{again}", str(tmp_path / "ds.slurm" / "merge.sbatch"),
                                 env=env)
    assert cluster.wait(again)[0]["ExitCode"] == "0:0"
    merged = cluster.wait(merge_again)[0]
    assert (merged["JobState"], merged["ExitCode"]) == ("COMPLETED", "0:0"), \
        (logs / f"merge-{merge_again}.log").read_text()
    assert_same_files(reference, out)

    resumed = (logs / f"precompute-{again}_1.log").read_text()
    done, already = map(int, re.search(r"describe: (\d+) done, (\d+) already done", resumed).groups())
    assert already >= 1 and done + already == len(shard_1)  # the cancelled task's paintings were kept
    first = (logs / f"precompute-{array}_0.log").read_text()
    for log in (first, resumed):
        assert "shard " in log and "1 CPU thread(s)" in log  # the script's line: SLURM_CPUS_PER_TASK=1
        assert "captioner: " in log and "(float32, 1 CPU thread)" in log  # torch's own count, in the job
        assert "\r" not in log and "\x1b[" not in log  # lines, not progress-bar redraws
    assert os.cpu_count() == 1 or "2 CPU threads" not in first
