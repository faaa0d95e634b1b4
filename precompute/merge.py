"""`tamscope merge DATASET [--input PAINTINGS]`: finish a dataset written by sharded runs.

Shards write disjoint painting folders into one dataset folder (on a shared filesystem) and set
the manifest's fields in turn (precompute.lock.update_manifest); the merge, holding the dataset
alone, lists every painting in the manifest, computes the statistics and validates. Then it
says what is not finished, and its exit code tells a job script (docs/precompute.md):

    0  every painting done by every stage that ran, the dataset valid (and, with --input, it
       matches the input folder: no painting missing, none changed since)
    1  paintings failed or were not reached (a shard killed, out of time, or never run; with
       --input, input paintings never described or changed since), or the dataset is not
       valid; each is listed. What is done is merged: run the shards concerned again (they
       resume), then merge again
    2  nothing merged: a shard is still writing the dataset, no dataset there, or a usage error
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contract import stats, validate
from contract.errors import UserError
from contract.store import PAINTINGS, Dataset
from precompute.lock import writer
from precompute.pipeline import PER_PAINTING, summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder the shards wrote into")
    parser.add_argument("--input", type=Path, default=None,
                        help="the input folder of the shards: also check that every painting in it was done")


def unfinished(dataset: Dataset, stages: list[str]) -> list[str]:
    """Paintings that miss a stage without having failed: their shard stopped before them."""
    return [r.id for r in dataset.records() if not r.failures and any(s not in r.stages for s in stages)]


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    if not (dataset.root / PAINTINGS).is_dir():
        raise UserError(f"{dataset.root} holds no paintings: run `tamscope precompute --shard K/N` into it first")
    with writer(dataset.root):  # after every shard: none may still be writing
        manifest = dataset.refresh_manifest()
        print(f"manifest: {len(manifest.paintings)} paintings, {len(manifest.failures)} failures")
        stats.run(argparse.Namespace(dataset=dataset.root, json=False))
        valid = validate.run(argparse.Namespace(dataset=dataset.root)) == 0
        behind = validate.input_violations(dataset.root, args.input) if getattr(args, "input", None) else []
    ran = [stage for stage in PER_PAINTING if stage in manifest.settings]
    print("\n".join(summary(dataset.root, None, ran)))
    failed = sorted({f.painting for f in manifest.failures})
    waiting = unfinished(dataset, ran)
    if waiting:
        print(f"{len(waiting)} painting(s) not finished by every stage, and not failed: their shard stopped "
              f"before them (killed, out of time) or has not run: {', '.join(waiting)}")
    for violation in behind:
        print(violation)
    problems = []
    if failed:
        problems.append(f"{len(failed)} painting(s) failed")
    if waiting:
        problems.append(f"{len(waiting)} not finished")
    if behind:
        problems.append(f"{len(behind)} difference(s) from the input folder")
    if not valid:
        problems.append("the dataset is not valid")
    if problems:
        print(f"merge: {'; '.join(problems)}. Run the shards concerned again (they resume), then merge again")
        return 1
    print(f"merge: {len(manifest.paintings)} paintings, every stage done, the dataset is valid")
    return 0
