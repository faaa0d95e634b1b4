"""`tamscope submit PAINTINGS DATASET --shards N`: the precompute pipeline on a SLURM cluster.

Writes two job scripts next to the dataset, in DATASET.slurm/, where they stay to be read,
edited and submitted again:

    precompute.sbatch  a job array, one task per shard, each `tamscope precompute --shard K/N`
                       with the options given here. N is written in the script, not taken from
                       the array, so one task submitted alone (`sbatch --array=3`) is still shard
                       3 of N; a task id that is no shard stops with a message.
    merge.sbatch       `tamscope merge DATASET --input PAINTINGS`

then submits the array, and the merge with `--dependency=afterany` on it (a shard exits 1 when a
painting failed: the merge runs anyway and says what is not finished). Logs go to
DATASET.slurm/logs/. `--dry-run` prints the scripts and writes and submits nothing.
docs/precompute.md ("SLURM") has the CPU and GPU variants, resubmission and exit codes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.errors import UserError
from contract.inputs import scan_input
from precompute import pipeline
from precompute.shards import in_shard


def configure(parser: argparse.ArgumentParser) -> None:
    pipeline.configure(parser)  # PAINTINGS DATASET and every precompute option, passed to the shards
    slurm = parser.add_argument_group("SLURM (the scripts' #SBATCH lines; the cluster's defaults where not given)")
    slurm.add_argument("--shards", type=int, required=True, help="number of shards: array tasks, one job each")
    slurm.add_argument("--partition", default=None, help="partition (queue) to run in")
    slurm.add_argument("--time", default=None, help="time limit of each shard, e.g. 04:00:00 (and of the merge)")
    slurm.add_argument("--mem", default=None, help="memory of each shard, e.g. 24G (docs/precompute.md: per model)")
    slurm.add_argument("--cpus", type=int, default=1,
                       help="CPUs of each shard; torch runs as many threads (default 1)")
    slurm.add_argument("--gpus", type=int, default=0, help="GPUs of each shard (--gres=gpu:N; default none)")
    slurm.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="one more #SBATCH option for both scripts, e.g. --sbatch=--account=proj (repeatable)")
    slurm.add_argument("--first-task", type=int, choices=(0, 1), default=0,
                       help="array task id of shard 0: 1 where arrays are numbered from 1 (default 0)")
    slurm.add_argument("--dry-run", action="store_true", help="print the scripts; write and submit nothing")


@dataclass
class Jobs:
    """What both scripts are made of."""

    python: str  # the interpreter that runs tamscope in the jobs (this one)
    workdir: Path  # where `tamscope submit` ran: relative model folders are found from it
    paintings: Path
    dataset: Path
    shards: int
    first_task: int
    options: list[tuple[str, ...]]  # the precompute options, each with its value
    shard_lines: list[str]  # #SBATCH options of each shard
    merge_lines: list[str]  # #SBATCH options of the merge
    epoch: str | None  # SOURCE_DATE_EPOCH at submission

    @property
    def folder(self) -> Path:
        return self.dataset.with_name(self.dataset.name + ".slurm")

    @property
    def array_script(self) -> Path:
        return self.folder / "precompute.sbatch"

    @property
    def merge_script(self) -> Path:
        return self.folder / "merge.sbatch"

    @property
    def name(self) -> str:
        return "tamscope-" + re.sub(r"[^A-Za-z0-9._-]+", "-", self.dataset.name)

    @property
    def tasks(self) -> str:
        return f"{self.first_task}-{self.first_task + self.shards - 1}"


def jobs_of(args: argparse.Namespace) -> Jobs:
    """The jobs the command line asks for; a mistake is a UserError before anything is written."""
    if getattr(args, "shard", None):
        raise UserError("--shard: submit gives each array task its own shard; use --shards N")
    if args.shards < 1:
        raise UserError(f"--shards {args.shards}: need at least 1")
    if args.cpus < 1 or args.gpus < 0:
        raise UserError("--cpus needs at least 1, --gpus 0 or more")
    shared = [f"--{key}={value}" for key, value in (("partition", args.partition), ("time", args.time)) if value]
    extra = [_sbatch_option(line) for line in args.sbatch]
    shard_lines = [*shared, f"--cpus-per-task={args.cpus}", *([f"--mem={args.mem}"] if args.mem else []),
                   *([f"--gres=gpu:{args.gpus}"] if args.gpus else []), *extra]
    dataset, paintings, workdir = args.dataset.resolve(), args.input.resolve(), Path.cwd()
    for text in [*shard_lines, str(dataset)]:
        if re.search(r"[\s%]", text):  # sbatch splits #SBATCH lines at spaces and reads % as a pattern
            raise UserError(f"{text!r}: #SBATCH lines (the options, the log folder) cannot hold spaces or %")
    for path in (paintings, workdir, Path(sys.executable)):
        if re.search(r"[\n\r]", str(path)):
            raise UserError(f"{str(path)!r}: a line break in a path would break the job script")
    return Jobs(python=sys.executable, workdir=workdir, paintings=paintings, dataset=dataset,
                shards=args.shards, first_task=args.first_task, options=pipeline.given_options(args),
                shard_lines=shard_lines, merge_lines=[*shared, "--cpus-per-task=1", *extra],
                epoch=os.environ.get("SOURCE_DATE_EPOCH"))


def _sbatch_option(line: str) -> str:
    option = line.strip().removeprefix("#SBATCH").strip()
    if not option.startswith("-"):
        raise UserError(f"--sbatch {line!r}: give one sbatch option, e.g. --sbatch=--account=proj")
    return option


def _sbatch_lines(options: list[str]) -> str:
    return "\n".join(f"#SBATCH {option}" for option in options)


def _epoch_line(epoch: str | None) -> str:
    if epoch is None:
        return ("# timestamps are the time of the run; SOURCE_DATE_EPOCH set when submitting pins them "
                "(docs/precompute.md)")
    return (f"export SOURCE_DATE_EPOCH={shlex.quote(epoch)}  # pinned at submission: a shard run again "
            f"writes the same bytes")


def _command(words: list[str], options: list[tuple[str, ...]]) -> str:
    """A command line, one option (with its value) per line."""
    lines = [" ".join(words), *(" ".join(shlex.quote(word) for word in option) for option in options)]
    return " \\\n    ".join(lines)


def array_script(jobs: Jobs) -> str:
    q = shlex.quote
    script = q(str(jobs.array_script))
    command = _command([q(jobs.python), "-m", "tamscope.cli", "precompute", q(str(jobs.paintings)),
                        q(str(jobs.dataset)), '--shard "$shard/$SHARDS"'], jobs.options)
    return f"""#!/bin/bash
# tamscope precompute of {jobs.paintings} into {jobs.dataset}: one SLURM array task per shard.
# Written by `tamscope submit`; read it, edit it, submit it again:
#   sbatch {script}              every shard
#   sbatch --array=K {script}    shard K alone ({jobs.tasks}): a killed or failed shard resumes
#SBATCH --job-name={jobs.name}
#SBATCH --array={jobs.tasks}
#SBATCH --output={jobs.folder}/logs/precompute-%A_%a.log
{_sbatch_lines(jobs.shard_lines)}
set -euo pipefail

SHARDS={jobs.shards}  # the paintings are split in this many shards, whatever the array submitted
FIRST_TASK={jobs.first_task}  # the array task id of shard 0

task=${{SLURM_ARRAY_TASK_ID:-}}
if ! [[ $task =~ ^[0-9]+$ ]]; then
    echo "not a SLURM array task (SLURM_ARRAY_TASK_ID='$task'): submit it with sbatch [--array=K] {script}" >&2
    exit 2
fi
shard=$((10#$task - FIRST_TASK))
if (( shard < 0 || shard >= SHARDS )); then
    echo "array task $task is no shard of this script: its tasks are {jobs.tasks} ($SHARDS shards);" \\
         "submit it again with --array=K, K in {jobs.tasks}" >&2
    exit 2
fi

# torch and the BLAS libraries use the CPUs SLURM gave this task, not every core of the node
export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}} MKL_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}
{_epoch_line(jobs.epoch)}
echo "shard $shard/$SHARDS: array task $task of job ${{SLURM_ARRAY_JOB_ID:-?}} on $(hostname)," \\
     "$OMP_NUM_THREADS CPU thread(s)"
cd {q(str(jobs.workdir))}
exec {command}
"""


def merge_script(jobs: Jobs) -> str:
    q = shlex.quote
    script = q(str(jobs.merge_script))
    command = _command([q(jobs.python), "-m", "tamscope.cli", "merge", q(str(jobs.dataset))],
                       [("--input", str(jobs.paintings))])
    return f"""#!/bin/bash
# tamscope merge of {jobs.dataset}, once every shard has ended. Written by `tamscope submit`:
#   sbatch --dependency=afterany:JOBID {script}    after shards submitted again as job JOBID
# Exit 0: every painting done by every stage, the dataset valid; 1: paintings failed or not
# finished (listed in the log): run their shards again, then this; 2: a shard is still writing.
#SBATCH --job-name={jobs.name}-merge
#SBATCH --output={jobs.folder}/logs/merge-%j.log
{_sbatch_lines(jobs.merge_lines)}
set -euo pipefail

{_epoch_line(jobs.epoch)}
cd {q(str(jobs.workdir))}
exec {command}
"""


def sbatch(*argv: str) -> str:
    """Submit; the job id."""
    done = subprocess.run(["sbatch", "--parsable", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"sbatch {' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]  # "id" or "id;cluster"


def shard_sizes(paintings: Path, shards: int) -> list[int]:
    ids = [p.id for p in scan_input(paintings).paintings]
    return [sum(in_shard(pid, (k, shards)) for pid in ids) for k in range(shards)]


def run(args: argparse.Namespace) -> int:
    jobs = jobs_of(args)
    sizes = shard_sizes(jobs.paintings, jobs.shards)  # a malformed input stops here, before any job
    print(f"{sum(sizes)} paintings in {jobs.shards} shards: {min(sizes)} to {max(sizes)} per shard")
    if 0 in sizes:
        print(f"shard(s) {', '.join(str(k) for k, n in enumerate(sizes) if n == 0)} hold no painting: "
              f"fewer shards would do")
    scripts = {jobs.array_script: array_script(jobs), jobs.merge_script: merge_script(jobs)}
    if args.dry_run:
        for path, text in scripts.items():
            print(f"\n# ---- {path} ----\n{text}", end="")
        print(f"\n(dry run: nothing written; `sbatch {jobs.array_script}`, then `sbatch "
              f"--dependency=afterany:<its job id> {jobs.merge_script}` would be submitted)")
        return 0
    if shutil.which("sbatch") is None:
        raise UserError("sbatch is not on PATH: run this on a SLURM login node (--dry-run shows the scripts)")
    logs = jobs.folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)  # SLURM writes no log into a missing folder
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    array = sbatch(str(jobs.array_script))
    merge = sbatch(f"--dependency=afterany:{array}", str(jobs.merge_script))
    print(f"wrote {jobs.array_script} and {jobs.merge_script.name}\n"
          f"submitted job {array}: {jobs.shards} shards (array tasks {jobs.tasks}), "
          f"logs {logs}/precompute-{array}_K.log\n"
          f"submitted job {merge}: the merge, once every shard has ended, log {logs}/merge-{merge}.log\n"
          f"follow them: squeue -j {array},{merge}\n"
          f"a shard that failed or was killed, e.g. task {jobs.first_task}: "
          f"sbatch --array={jobs.first_task} {jobs.array_script} (it resumes),\n"
          f"  then: sbatch --dependency=afterany:<its job id> {jobs.merge_script}")
    return 0
