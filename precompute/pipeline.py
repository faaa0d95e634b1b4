"""`tamscope precompute INPUT DATASET`: every stage in order, then statistics and validation.

Each stage is run through its own command-line entry (configure/run), so the pipeline takes
exactly the options the stages take and a stage behaves the same alone or in the pipeline.
Every stage is resumable, so re-running the pipeline after a crash redoes only what is missing.
One overall progress bar counts the stages (each stage's own bar shows its paintings), and the
summary at the end is read from the dataset itself: per stage, how many paintings carry its
stamp and which failed with what error, so it is right after a resume too.

With `--shard K/N` the per-painting stages process only shard K (a stable hash of the painting
id) and the dataset-wide steps are left to `tamscope merge DATASET`, run once after all shards
(docs/precompute.md has a SLURM job-array example).

`--text-llm lexicon` runs without a text LLM: the span classifier's keyword baseline and the
metadata string match only (what the embedded smoke dataset uses).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from tqdm import tqdm

from precompute.runner import in_shard, parse_shard
from precompute.stages.describe import TAM_VARIANTS
from tamscope.cli import COMMANDS
from tamscope.store import Dataset

DEFAULT_CAPTIONER = "Qwen/Qwen2-VL-2B-Instruct"
DEFAULT_TEXT_LLM = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_SEGMENTER = "facebook/sam3"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="folder of paintings (images + optional annotations.json/csv)")
    parser.add_argument("dataset", type=Path, help="dataset folder to write (created, or resumed)")
    parser.add_argument("--captioner", default=DEFAULT_CAPTIONER, help="Qwen2-VL / Qwen2.5-VL hub id or folder")
    parser.add_argument("--text-llm", default=DEFAULT_TEXT_LLM, help="span classifier and metadata judge")
    parser.add_argument("--segmenter", default=DEFAULT_SEGMENTER, help="SAM 3 hub id or folder")
    parser.add_argument("--prompt", default=None, help="captioning prompt (default: the paper's)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--tam-variant", default=None, choices=TAM_VARIANTS,
                        help="reference (default: the authors' maps) or corrected (docs/tam.md)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16")
    parser.add_argument("--sam-threshold", type=float, default=None, help="SAM 3 score threshold (default 0.5)")
    parser.add_argument("--reliance-threshold", type=float, default=None,
                        help="visual reliance threshold in nats (default 1.0)")
    parser.add_argument("--shard", default=None, help="K/N: process shard K of N, then `tamscope merge`")
    parser.add_argument("--force", action="store_true", help="redo stages already done")
    parser.add_argument("--name", default=None, help="dataset name for the manifest")
    parser.add_argument("--only", default=None, help="comma-separated stages to run (default: all)")


def stage_argvs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The command line of every stage, in order."""
    ds = str(args.dataset)
    common = ["--device", args.device, "--dtype", args.dtype]
    per_painting = (["--shard", args.shard] if args.shard else []) + (["--force"] if args.force else [])
    describe = [str(args.input), ds, "--model", args.captioner, *common, *per_painting]
    if args.prompt:
        describe += ["--prompt", args.prompt]
    if args.max_new_tokens:
        describe += ["--max-new-tokens", str(args.max_new_tokens)]
    if args.tam_variant:
        describe += ["--tam-variant", args.tam_variant]
    if args.name:
        describe += ["--name", args.name]
    reliance = [ds, "--model", args.captioner, *common, *per_painting]
    if args.reliance_threshold is not None:
        reliance += ["--threshold", str(args.reliance_threshold)]
    sam = [ds, "--model", args.segmenter, *common, *per_painting]
    if args.sam_threshold is not None:
        sam += ["--threshold", str(args.sam_threshold)]
    stages = [
        ("describe", describe),
        ("reliance", reliance),
        ("spans", [ds, "--model", args.text_llm, *common, *per_painting]),
        ("spanmaps", [ds, *per_painting]),
        ("sam", sam),
        ("metadata", [ds, "--model", args.text_llm, *common, *per_painting]),
    ]
    if not args.shard:
        stages.append(("stats", [ds]))
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {name for name, _ in stages}
        if unknown:
            raise SystemExit(f"--only: unknown stage(s) {sorted(unknown)}")
        stages = [(name, argv) for name, argv in stages if name in wanted]
    return stages


def run_command(name: str, argv: list[str]) -> int:
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"tamscope {name}")
    module.configure(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


PER_PAINTING = ("describe", "reliance", "spans", "spanmaps", "sam", "metadata")


def summary(dataset_dir: Path, shard: tuple[int, int] | None, stages: list[str]) -> list[str]:
    """Per stage: paintings done and failed (with errors), read from the records."""
    dataset = Dataset(dataset_dir)
    records = [r for r in dataset.records() if in_shard(r.id, shard)]
    lines = [f"{len(records)} paintings" + (f" in shard {shard[0]}/{shard[1]}" if shard else "")]
    errors: dict[tuple[str, str], list[str]] = {}  # (stage, error) -> paintings: one line per distinct error
    for stage in (s for s in stages if s in PER_PAINTING):
        done = sum(stage in r.stages for r in records)
        failed = [(r.id, f.error) for r in records for f in r.failures if f.stage == stage]
        lines.append(f"  {stage:<9} {done:4d} done  {len(failed):4d} failed")
        for pid, error in failed:
            errors.setdefault((stage, error), []).append(pid)
    if errors:
        lines.append("failures:")
        lines += [f"  {stage}: {error} [{', '.join(pids)}]" for (stage, error), pids in errors.items()]
    return lines


def run(args: argparse.Namespace) -> int:
    shard = parse_shard(args.shard)  # fail early on a malformed --shard
    stages = stage_argvs(args)
    codes: dict[str, int] = {}
    start = time.monotonic()
    overall = tqdm(stages, desc="precompute", unit="stage", dynamic_ncols=True)
    for name, argv in overall:
        overall.set_postfix_str(name)
        codes[name] = run_command(name, argv)
    overall.close()
    print(f"\n== summary ({time.monotonic() - start:.0f} s) ==")
    print("\n".join(summary(args.dataset, shard, list(codes))))
    for name in (n for n in codes if n not in PER_PAINTING):
        print(f"  {name:<9} {'ok' if codes[name] == 0 else f'exit {codes[name]}'}")
    if args.shard:
        print(f"shard {args.shard} done; after every shard: tamscope merge {args.dataset}")
        return 0 if not any(codes.values()) else 1
    valid = run_command("validate", [str(args.dataset)])
    return 0 if valid == 0 and not any(codes.values()) else 1
