"""`tamscope submit`: the job scripts it writes, run by bash as SLURM would run them, and its
calls to sbatch (a stand-in on PATH). The real cluster is tests/test_slurm.py."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from precompute import pipeline, submit
from precompute.smoke import write_smoke_paintings
from tamscope.cli import main
from testkit import REPO

OPTIONS = ["--captioner", "models/qwen", "--text-llm", "lexicon", "--max-new-tokens", "7", "--device", "cpu",
           "--prompt", "it's \"all\" $HOME; `rm -rf`", "--reliance-blur", "3", "--spanmaps-how", "max", "--force",
           "--only", "describe,spans"]


@pytest.fixture(scope="module")
def paintings(tmp_path_factory) -> Path:
    return write_smoke_paintings(tmp_path_factory.mktemp("paintings"))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    submit.configure(parser)
    return parser.parse_args(argv)


def scripts(paintings: Path, out: Path, *argv: str) -> tuple[str, str]:
    jobs = submit.jobs_of(parse([str(paintings), str(out), "--shards", "2", *argv]))
    return submit.array_script(jobs), submit.merge_script(jobs)


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def exec_line(script: str) -> list[str]:
    """The words of the script's last command, as bash reads them."""
    command = script[script.index("\nexec ") + 6:].replace("\\\n", " ")
    return shlex.split(command)


def test_the_shards_run_precompute_with_every_option_given(paintings, tmp_path):
    array, _ = scripts(paintings, tmp_path / "ds", *OPTIONS)
    words = exec_line(array)
    assert words[1:4] == ["-m", "tamscope.cli", "precompute"]
    assert words[words.index("--shard") + 1] == "$shard/$SHARDS"  # bash expands it, from the task id
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    expected = parser.parse_args([str(paintings), str(tmp_path / "ds"), *OPTIONS])
    assert vars(parser.parse_args(words[4:])) == {**vars(expected), "shard": "$shard/$SHARDS"}


def test_cpu_scripts_ask_for_what_any_cpu_node_has(paintings, tmp_path):
    array, merge = scripts(paintings, tmp_path / "ds")
    logs = tmp_path / "ds.slurm" / "logs"
    assert sbatch_lines(array) == ["--job-name=tamscope-ds", "--array=0-1", f"--output={logs}/precompute-%A_%a.log",
                                   "--cpus-per-task=1"]  # no GPU, no memory: the cluster's defaults
    assert sbatch_lines(merge) == ["--job-name=tamscope-ds-merge", f"--output={logs}/merge-%j.log",
                                   "--cpus-per-task=1"]
    assert exec_line(merge)[3:] == ["merge", str(tmp_path / "ds"), "--input", str(paintings)]


def test_gpu_scripts(paintings, tmp_path):
    array, merge = scripts(paintings, tmp_path / "ds", "--partition", "gpu", "--time", "04:00:00", "--mem", "32G",
                           "--cpus", "4", "--gpus", "1", "--sbatch=--account=proj", "--sbatch", "#SBATCH --qos=long")
    assert sbatch_lines(array)[3:] == ["--partition=gpu", "--time=04:00:00", "--cpus-per-task=4", "--mem=32G",
                                       "--gres=gpu:1", "--account=proj", "--qos=long"]
    assert sbatch_lines(merge)[2:] == ["--partition=gpu", "--time=04:00:00", "--cpus-per-task=1", "--account=proj",
                                       "--qos=long"]  # the merge needs no GPU


def run_task(script: Path, task: str | None, cpus: str = "1") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMP_", "MKL_"))}
    env.update(SLURM_CPUS_PER_TASK=cpus, PYTHONPATH=str(REPO))
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = task
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("first_task, task, shard", [("0", "1", "1/2"), ("1", "2", "1/2"), ("1", "1", "0/2")])
def test_a_task_runs_its_shard_of_the_n_written_in_the_script(tmp_path, first_task, task, shard):
    """A task submitted alone (`sbatch --array=K`) is shard K - FIRST_TASK of 2, whatever the array's size."""
    missing = tmp_path / "no-paintings"  # precompute stops at once, after the script's own line
    script = tmp_path / "precompute.sbatch"
    script.write_text(scripts(missing, tmp_path / "ds", "--first-task", first_task)[0])
    done = run_task(script, task, cpus="3")
    assert done.stdout.startswith(f"shard {shard}: array task {task} of job ? on ")
    assert "3 CPU thread(s)" in done.stdout  # OMP_NUM_THREADS from SLURM_CPUS_PER_TASK
    assert done.returncode == 2 and f"input folder {missing} does not exist" in done.stderr  # precompute's own check


@pytest.mark.parametrize("first_task, task", [("0", "2"), ("1", "0"), ("1", "3"), ("0", None), ("0", "1-2")])
def test_a_task_that_is_no_shard_stops_before_precompute(paintings, tmp_path, first_task, task):
    script = tmp_path / "precompute.sbatch"
    script.write_text(scripts(paintings, tmp_path / "ds", "--first-task", first_task)[0])
    done = run_task(script, task)
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1
    tasks = f"{first_task}-{int(first_task) + 1}"
    if task is None or not task.isdigit():
        assert done.stderr.startswith(f"not a SLURM array task (SLURM_ARRAY_TASK_ID='{task or ''}')")
    else:
        assert done.stderr.startswith(f"array task {task} is no shard of this script: its tasks are {tasks} "
                                      f"(2 shards); submit it again with --array=K, K in {tasks}")
    assert not (tmp_path / "ds").exists()


def test_source_date_epoch_is_written_into_both_scripts(paintings, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    for script in scripts(paintings, tmp_path / "ds"):
        assert "\nexport SOURCE_DATE_EPOCH=1767225600  # pinned at submission" in script
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    for script in scripts(paintings, tmp_path / "ds"):
        assert "SOURCE_DATE_EPOCH=" not in script and "SOURCE_DATE_EPOCH set when submitting pins them" in script


def test_dry_run_prints_the_scripts_and_writes_nothing(paintings, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["submit", str(paintings), str(out), "--shards", "3", "--dry-run", "--text-llm", "lexicon"]) == 0
    printed = capsys.readouterr().out
    array, merge = scripts(paintings, out, "--text-llm", "lexicon", "--shards", "3")
    assert array in printed and merge in printed
    assert printed.startswith("4 paintings in 3 shards: ")
    assert not (tmp_path / "ds.slurm").exists() and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--shard", "0/2"], "submit gives each array task its own shard"),
    (["--sbatch", "account=proj"], "give one sbatch option"),
    (["--sbatch=--comment=two words"], "cannot hold spaces"),
    (["--sbatch=--output=%j.log"], "cannot hold spaces or %"),
    (["--shards", "0"], "need at least 1"),
])
def test_mistakes_are_one_line_before_anything_is_written(paintings, tmp_path, capsys, argv, message):
    assert main(["submit", str(paintings), str(tmp_path / "ds"), "--shards", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds.slurm").exists()


def test_submits_the_array_then_the_merge_after_it(paintings, tmp_path, capsys, monkeypatch):
    """sbatch here is a stand-in that records its arguments and answers job ids as --parsable does."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    calls = tmp_path / "calls"
    (bin_ / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "$(( $(wc -l < {calls}) + 40 ));cluster"\n')
    (bin_ / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(paintings), "ds", "--shards", "2"]) == 0
    folder = tmp_path / "ds.slurm"
    assert calls.read_text().splitlines() == [f"--parsable {folder}/precompute.sbatch",
                                              f"--parsable --dependency=afterany:41 {folder}/merge.sbatch"]
    printed = capsys.readouterr().out
    assert "submitted job 41: 2 shards (array tasks 0-1)" in printed and "submitted job 42: the merge" in printed
    assert "squeue -j 41,42" in printed and f"sbatch --array=0 {folder}/precompute.sbatch" in printed
    assert (folder / "logs").is_dir()  # SLURM would write no log into a missing folder
    assert all(os.access(folder / name, os.X_OK) for name in ("precompute.sbatch", "merge.sbatch"))
    assert re.search(rf"^cd {re.escape(str(tmp_path))}$", (folder / "precompute.sbatch").read_text(), re.M)


def test_a_line_break_in_a_path_never_reaches_a_script(tmp_path, capsys):
    odd = tmp_path / "in\nrm -rf ~"  # the scripts name the folder in comments, where a line break would end them
    write_smoke_paintings(odd)
    assert main(["submit", str(odd), str(tmp_path / "ds"), "--shards", "2", "--dry-run"]) == 2
    assert "a line break in a path would break the job script" in capsys.readouterr().err
