"""`tamscope precompute INPUT DATASET`: every stage in order, then statistics and validation.

Each stage is run through its own command-line entry (configure/run), so the pipeline takes
exactly the options the stages take and a stage behaves the same alone or in the pipeline.
Every stage is resumable, so re-running the pipeline after a crash redoes only what is missing.
One overall progress bar counts the stages (each stage's own bar shows its paintings), and the
summary at the end is read from the dataset itself: per stage, how many paintings carry its
stamp and which failed with what error, so it is right after a resume too. The run holds the
dataset's writer lock (precompute.lock) throughout, and ends with `validate --input`: a
painting whose input changed or vanished is a violation, not a silent pass.

With `--shard K/N` the per-painting stages process only shard K (a stable hash of the painting
id) and the dataset-wide steps are left to `tamscope merge DATASET`, run once after all shards
(`tamscope submit` runs them as a SLURM job array, precompute.submit).

`--text-llm lexicon` runs without a text LLM: the span classifier's keyword baseline and the
metadata string match only (what the embedded smoke dataset uses).
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from contract.inputs import scan_input
from contract.store import Dataset
from precompute.lock import writer
from precompute.progress import progress
from precompute.runner import add_batch_option, add_model_options, add_run_options, in_shard, parse_shard
from tamscope.cli import COMMANDS

STAGES = ("describe", "reliance", "spans", "spanmaps", "sam", "metadata", "faithfulness")
OPTIONAL = ("faithfulness",)  # run only when asked: `--faithfulness` (or `--only faithfulness`)
# Each stage calls its model --model; the pipeline names the model by its role.
ROLES = {"describe": "captioner", "reliance": "captioner", "faithfulness": "captioner", "spans": "text-llm", "metadata": "text-llm",
         "sam": "segmenter"}
ROLE_HELP = {"captioner": "Qwen2-VL / Qwen2.5-VL / Qwen3-VL / Qwen3.5 / InternVL / LLaVA-OneVision hub id or folder "
                          "(describe, reliance, faithfulness; "
                          "docs/models.md)",
             "text-llm": "span classifier and metadata judge (hub id or folder, or 'lexicon')",
             "segmenter": "SAM 3 hub id or folder"}
UNPREFIXED = "describe"  # the captioning stage's options keep their names: --prompt, --max-new-tokens, ...


def stage_parser(stage: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"tamscope {stage}")
    importlib.import_module(COMMANDS[stage][0]).configure(parser)
    return parser


def common_dests() -> set[str]:
    """Options every stage declares through the runner's shared helpers (--device, --shard, ...):
    one pipeline option each, passed to every stage that takes it. --revision is per model."""
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    add_batch_option(parser)
    add_run_options(parser)
    return {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "revision")}


def pipeline_flag(stage: str, action: argparse.Action, common: set[str]) -> str:
    """The pipeline's name for one option of one stage (docs/precompute.md, "Options")."""
    own = max(action.option_strings, key=len)  # "--max-new-tokens"
    if action.dest in common:
        return own
    if action.dest == "model":
        return f"--{ROLES[stage]}"
    if action.dest == "revision":
        return f"--{ROLES[stage]}-revision"
    return own if stage == UNPREFIXED else f"--{stage}-{own[2:]}"


def stage_options(stage: str) -> list[argparse.Action]:
    return [a for a in stage_parser(stage)._actions if a.option_strings and a.dest != "help"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Every option of every stage, declared once by the stage itself and exposed here under its
    pipeline name; an option the user does not give is not passed, so the stage's default holds."""
    parser.add_argument("input", type=Path, help="folder of paintings (images + optional annotations.json/csv)")
    parser.add_argument("dataset", type=Path, help="dataset folder to write (created, or resumed)")
    parser.add_argument("--only", default=None, help="comma-separated stages to run (default: all but the optional)")
    for stage in OPTIONAL:
        parser.add_argument(f"--{stage}", action="store_true", dest=f"run_{stage}",
                            help=f"also run the optional stage {stage} (`tamscope {stage} --help`)")
    shared = parser.add_argument_group("models, and options of every stage")
    for stage, role in ROLES.items():  # the model of each role, always passed: the pipeline owns it
        if f"--{role}" not in parser._option_string_actions:
            model = next(a for a in stage_options(stage) if a.dest == "model")
            shared.add_argument(f"--{role}", default=model.default, help=f"{ROLE_HELP[role]} (default {model.default})")
            shared.add_argument(f"--{role}-revision", default=argparse.SUPPRESS, help=f"{role} model revision")
    generic = argparse.ArgumentParser(add_help=False)
    add_model_options(generic)
    add_batch_option(generic)
    add_run_options(generic, "stages already done with the same settings")
    common = common_dests()
    for action in generic._actions:
        if action.dest in common:
            _declare(shared, max(action.option_strings, key=len), action)
    for stage in STAGES:
        group = None
        for action in stage_options(stage):
            flag = pipeline_flag(stage, action, common)
            if flag not in parser._option_string_actions:
                group = group or parser.add_argument_group(f"{stage} options (`tamscope {stage} --help`)")
                _declare(group, flag, action)


def _declare(group, flag: str, action: argparse.Action) -> None:
    """A stage option under its pipeline name, with no default of its own (SUPPRESS)."""
    default = "" if action.default in (None, False) else f" (default {action.default})"
    kw: dict = {"dest": flag[2:].replace("-", "_"), "default": argparse.SUPPRESS,
                "help": (action.help or "") + default}
    kind = type(action).__name__
    if kind == "_StoreTrueAction":
        kw["action"] = "store_true"
    elif kind == "_StoreAction" and action.nargs is None:
        kw.update(type=action.type, choices=action.choices, metavar=action.metavar)
    else:
        raise TypeError(f"option {flag}: the pipeline cannot pass a {kind} through")
    group.add_argument(flag, **kw)


def given_options(args: argparse.Namespace) -> list[tuple[str, ...]]:
    """configure's inverse: the options of `tamscope precompute` that `args` holds, each with its
    value, as on a command line (each option given, and every model: the pipeline always passes them)."""
    parser = argparse.ArgumentParser()
    configure(parser)
    options: list[tuple[str, ...]] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "help" or value is None or value is False:
            continue
        flag = max(action.option_strings, key=len)
        options.append((flag,) if value is True else (flag, str(value)))
    return options


def stage_argvs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The command line of every stage, in order: its positionals and the options given."""
    common = common_dests()
    stages = []
    wanted_optional = {s for s in OPTIONAL if getattr(args, f"run_{s}", False)
                       or s in {n.strip() for n in (args.only or "").split(",")}}
    for stage in STAGES:
        if stage in OPTIONAL and stage not in wanted_optional:
            continue
        argv = [str(args.input), str(args.dataset)] if stage == "describe" else [str(args.dataset)]
        for action in stage_options(stage):
            flag = pipeline_flag(stage, action, common)
            value = getattr(args, flag[2:].replace("-", "_"), None)
            own = max(action.option_strings, key=len)
            if value is None or value is False:
                continue
            argv += [own] if value is True else [own, str(value)]
        stages.append((stage, argv))
    if not getattr(args, "shard", None):
        stages.append(("stats", [str(args.dataset)]))
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


PER_PAINTING = STAGES


def summary(dataset_dir: Path, shard: tuple[int, int] | None, stages: list[str]) -> list[str]:
    """Per stage: paintings done and failed (with errors), read from the records."""
    dataset = Dataset(dataset_dir)
    records = [r for r in dataset.records() if in_shard(r.id, shard)]
    lines = [f"{len(records)} paintings" + (f" in shard {shard[0]}/{shard[1]}" if shard else "")]
    errors: dict[tuple[str, str], list[str]] = {}  # (stage, error) -> paintings: one line per distinct error
    for stage in (s for s in stages if s in PER_PAINTING):
        failed = [(r.id, f.error) for r in records for f in r.failures if f.stage == stage]
        stamped = [r.id for r in records if stage in r.stages]
        kept = len({pid for pid, _ in failed} & set(stamped))  # failed again, the earlier result kept
        line = f"  {stage:<9} {len(stamped) - kept:4d} done  {len(failed):4d} failed"
        lines.append(line + (f"  ({kept} keep an earlier result)" if kept else ""))
        for pid, error in failed:
            errors.setdefault((stage, error), []).append(pid)
    if errors:
        lines.append("failures:")
        lines += [f"  {stage}: {error} [{', '.join(pids)}]" for (stage, error), pids in errors.items()]
    return lines


def run(args: argparse.Namespace) -> int:
    shard = parse_shard(getattr(args, "shard", None))  # fail early on a malformed --shard
    stages = stage_argvs(args)
    scan_input(args.input)  # and on a malformed annotations file, before any stage starts
    with writer(args.dataset, shard):  # one run per dataset (or per shard) at a time
        return run_stages(args, shard, stages)


def run_stages(args: argparse.Namespace, shard: tuple[int, int] | None, stages: list[tuple[str, list[str]]]) -> int:
    codes: dict[str, int] = {}
    start = time.monotonic()
    overall = progress(total=len(stages), desc="precompute", unit="stage")
    for name, argv in stages:
        overall.set_postfix_str(name)  # shown at once: in a log, the line that says which stage starts
        codes[name] = run_command(name, argv)
        overall.update()
    overall.close()
    print(f"\n== summary ({time.monotonic() - start:.0f} s) ==")
    print("\n".join(summary(args.dataset, shard, list(codes))))
    for name in (n for n in codes if n not in PER_PAINTING):
        print(f"  {name:<9} {'ok' if codes[name] == 0 else f'exit {codes[name]}'}")
    if shard:
        print(f"shard {args.shard} done; after every shard: tamscope merge {args.dataset}")
        return 0 if not any(codes.values()) else 1
    valid = run_command("validate", [str(args.dataset), "--input", str(args.input)])
    return 0 if valid == 0 and not any(codes.values()) else 1
