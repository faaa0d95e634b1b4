"""One writer per dataset, or per shard: real concurrent `tamscope` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.inputs import scan_input
from contract.schema import ModelRef
from contract.store import Dataset
from contract.validate import validate_dataset
from precompute.lock import LOCK, MANIFEST_LOCK, DatasetBusy, update_manifest, writer
from precompute.shards import in_shard
from testkit.fixture_dataset import make_dataset

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(3)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(out / f"p{i}.png")
    return out


def describe(folder: Path, out: Path, model: Path, *extra: str, pause: str | None = None) -> list[str]:
    """The describe command line; with `pause`, through tests.slow_cli (a pause after each painting)."""
    head = [sys.executable, "-m", "tests.slow_cli", pause] if pause else [sys.executable, "-m", "tamscope.cli"]
    return [*head, "describe", str(folder), str(out), "--model", str(model), "--max-new-tokens", "4",
            "--device", "cpu", *extra]


def start_holding(cmd: list[str], lock: Path) -> subprocess.Popen:
    """Start a run and wait until it holds `lock` (its pid written there)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.is_file() and lock.read_text().strip() == str(proc.pid):
            return proc
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"the first run never took {lock}: {proc.communicate()[1]}")


def refused(cmd: list[str]) -> str:
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    return done.stderr.strip()


def test_a_second_writer_is_refused_with_the_holders_pid(folder, tiny_qwen2vl_dir, tmp_path):
    out = tmp_path / "ds"
    first = start_holding(describe(folder, out, tiny_qwen2vl_dir, pause="30"), out / LOCK)
    try:
        message = refused(describe(folder, out, tiny_qwen2vl_dir))
        assert message == (f"tamscope describe: {out} is being written by another tamscope run (pid {first.pid}); "
                           f"wait for it to finish, or split the work with --shard K/N")
        assert f"(pid {first.pid})" in refused([sys.executable, "-m", "tamscope.cli", "spanmaps", str(out)])
        pipeline = refused([sys.executable, "-m", "tamscope.cli", "precompute", str(folder), str(out)])
        assert pipeline.startswith(f"tamscope precompute: {out} is being written") and f"(pid {first.pid})" in pipeline
        assert f"(pid {first.pid})" in refused(describe(folder, out, tiny_qwen2vl_dir, "--shard", "1/2"))
    finally:
        first.send_signal(signal.SIGKILL)  # killed while holding the lock: the kernel drops it
        first.wait()
    assert (out / LOCK).exists()  # left behind by the kill, holding nothing
    done = subprocess.run(describe(folder, out, tiny_qwen2vl_dir), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(Dataset(out).painting_ids()) == 4 and not (out / LOCK).exists()
    assert validate_dataset(out, folder) == []


def test_different_shards_run_side_by_side(folder, tiny_qwen2vl_dir, tmp_path):
    out = tmp_path / "ds"
    shard_lock = out / f"{LOCK}-shard-0-of-2"
    first = start_holding(describe(folder, out, tiny_qwen2vl_dir, "--shard", "0/2", pause="30"), shard_lock)
    try:
        other = subprocess.run(describe(folder, out, tiny_qwen2vl_dir, "--shard", "1/2"), cwd=REPO, env=ENV,
                               capture_output=True, text=True, timeout=300)
        assert other.returncode == 0, other.stdout + other.stderr  # shard 1 ran while shard 0 held its own
        shard_1 = {p.id for p in scan_input(folder).paintings if in_shard(p.id, (1, 2))}
        assert shard_1 and shard_1 <= set(Dataset(out).painting_ids())
        same = refused(describe(folder, out, tiny_qwen2vl_dir, "--shard", "0/2"))
        assert f"shard 0/2 of {out} is being written by another run (pid {first.pid})" in same
        whole = refused(describe(folder, out, tiny_qwen2vl_dir))
        assert f"(pid {first.pid} (shard 0/2))" in whole
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_the_lock_is_reentrant_in_a_process_and_released(tmp_path):
    with writer(tmp_path), writer(tmp_path):  # the pipeline holds it while its stages ask again
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK).exists()
    with writer(tmp_path, (0, 2)), pytest.raises(DatasetBusy, match="being written by"):
        with writer(tmp_path):  # the whole dataset while a shard of it is held
            pass


def test_shards_take_turns_on_the_manifest(tmp_path):
    """Two shard runs setting their model at once. Without turns, the second writes its entry
    while the first is between reading and writing the manifest, and the first writes it away."""
    root = tmp_path / "ds"
    Dataset(root).refresh_manifest(name="t")
    reading = threading.Event()

    class SlowReader(Dataset):
        def manifest(self):
            manifest = super().manifest()
            reading.set()
            time.sleep(0.5)  # the first shard, read but not written
            return manifest

    first = threading.Thread(target=update_manifest, args=(SlowReader(root), (0, 2)),
                             kwargs={"models": {"captioner": ModelRef(id="qwen", revision="a")}})
    first.start()
    assert reading.wait(10)
    update_manifest(Dataset(root), (1, 2), models={"segmenter": ModelRef(id="sam", revision="b")})
    first.join()
    assert set(Dataset(root).manifest().models) == {"captioner", "segmenter"}
    assert not (root / MANIFEST_LOCK).exists()


def test_shard_runs_leave_the_painting_list_to_merge(tmp_path):
    root = make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False)
    listed = Dataset(root).manifest().paintings
    (root / "paintings" / listed[0].id / "record.json").unlink()  # a change the list does not show yet
    update_manifest(Dataset(root), (0, 2), settings={"spans": {"retries": 2}})
    manifest = Dataset(root).manifest()
    assert manifest.paintings == listed and manifest.settings["spans"] == {"retries": 2}
    update_manifest(Dataset(root), None, settings={"spans": {"retries": 2}})  # unsharded: the run owns the list
    assert [p.id for p in Dataset(root).manifest().paintings] == [listed[1].id]
