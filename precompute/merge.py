"""`tamscope merge DATASET`: finish a dataset written by sharded stage runs.

Shards write disjoint painting folders into one dataset folder (on a shared filesystem);
this rebuilds the manifest from every record, computes the statistics and validates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contract import stats, validate
from contract.store import Dataset
from precompute.lock import writer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder the shards wrote into")


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    with writer(args.dataset):  # after every shard: none may still be writing
        manifest = dataset.refresh_manifest()
        print(f"manifest: {len(manifest.paintings)} paintings, {len(manifest.failures)} failures")
        stats.run(argparse.Namespace(dataset=args.dataset, json=False))
        return validate.run(argparse.Namespace(dataset=args.dataset))
