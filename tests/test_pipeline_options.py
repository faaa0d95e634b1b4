"""`tamscope precompute` passes every option of every stage through (docs/precompute.md,
"Options"): a value given to the pipeline arrives in the stage, and an option not given is
not passed, so the stage's own default holds."""

from __future__ import annotations

import argparse
import importlib

import pytest

from precompute import pipeline
from precompute.runner import add_batch_option, add_model_options, add_run_options

# the naming rule of docs/precompute.md, written out by hand for the options the docs name
DOCUMENTED = {
    ("describe", "model"): "--captioner", ("reliance", "model"): "--captioner",
    ("describe", "revision"): "--captioner-revision", ("spans", "revision"): "--text-llm-revision",
    ("sam", "model"): "--segmenter", ("metadata", "model"): "--text-llm",
    ("describe", "max_new_tokens"): "--max-new-tokens", ("describe", "max_pixels"): "--max-pixels", ("describe", "tam_variant"): "--tam-variant",
    ("describe", "prompt"): "--prompt", ("reliance", "blur"): "--reliance-blur",
    ("reliance", "threshold"): "--reliance-threshold", ("sam", "threshold"): "--sam-threshold",
    ("spans", "retries"): "--spans-retries", ("spans", "max_new_tokens"): "--spans-max-new-tokens",
    ("metadata", "max_new_tokens"): "--metadata-max-new-tokens", ("describe", "device"): "--device",
    ("sam", "shard"): "--shard", ("spanmaps", "force"): "--force",
    ("describe", "batch_size"): "--batch-size", ("reliance", "batch_size"): "--batch-size",
    ("faithfulness", "model"): "--captioner", ("faithfulness", "steps"): "--faithfulness-steps",
    ("faithfulness", "methods"): "--faithfulness-methods",
}


def stage_actions(stage: str) -> list[argparse.Action]:
    parser = argparse.ArgumentParser()
    importlib.import_module(pipeline.COMMANDS[stage][0]).configure(parser)
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def expected_flag(stage: str, action: argparse.Action) -> str:
    """The documented rule: shared options keep their names, models are named by role, the
    captioning stage's options keep their names, every other stage's options get its prefix."""
    shared = argparse.ArgumentParser()
    add_model_options(shared)
    add_batch_option(shared)
    add_run_options(shared)
    role = {"describe": "captioner", "reliance": "captioner", "faithfulness": "captioner", "spans": "text-llm", "metadata": "text-llm",
            "sam": "segmenter"}.get(stage)
    name = max(action.option_strings, key=len)
    if action.dest == "model":
        return f"--{role}"
    if action.dest == "revision":
        return f"--{role}-revision"
    if any(action.dest == a.dest for a in shared._actions) or stage == "describe":
        return name
    return f"--{stage}-{name[2:]}"


def other_value(action: argparse.Action):
    """A value unlike the default, of the option's type."""
    if action.nargs == 0:
        return True
    if action.choices:
        return next(c for c in action.choices if c != action.default)
    if action.type is int:
        return (action.default or 0) + 7
    if action.type is float:
        return (action.default or 0) + 0.25
    if action.dest == "shard":
        return "1/3"
    if action.metavar == "SIZE":  # --faithfulness-max-memory
        return "3G"
    return f"value-of-{action.dest}"


@pytest.mark.parametrize("stage", pipeline.STAGES)
def test_every_stage_option_reaches_its_stage(stage, tmp_path):
    actions = stage_actions(stage)
    given = {expected_flag(stage, a): other_value(a) for a in actions}
    for (owner, dest), flag in DOCUMENTED.items():
        if owner == stage:
            assert expected_flag(stage, next(a for a in actions if a.dest == dest)) == flag
    argv = [str(tmp_path / "in"), str(tmp_path / "ds"), "--faithfulness"]  # the optional stage too
    for flag, value in given.items():
        argv += [flag] if value is True else [flag, str(value)]
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    stage_argv = dict(pipeline.stage_argvs(parser.parse_args(argv)))[stage]
    parser = argparse.ArgumentParser()
    importlib.import_module(pipeline.COMMANDS[stage][0]).configure(parser)
    parsed = vars(parser.parse_args(stage_argv))
    for action in actions:
        want = other_value(action)
        if action.metavar == "SIZE":  # parsed into bytes
            want = action.type(want)
        assert str(parsed[action.dest]) == str(want), f"{stage} {action.dest}"


@pytest.mark.parametrize("stage", pipeline.STAGES)
def test_options_not_given_keep_the_stage_default(stage, tmp_path):
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    plain = [str(tmp_path / "in"), str(tmp_path / "ds")]
    if stage in pipeline.OPTIONAL:  # off by default, on when asked
        assert stage not in dict(pipeline.stage_argvs(parser.parse_args(plain)))
        plain.append(f"--{stage}")
    stage_argv = dict(pipeline.stage_argvs(parser.parse_args(plain)))[stage]
    passed = [a for a in stage_argv if a.startswith("--")]
    assert passed == (["--model"] if stage in ("describe", "reliance", "spans", "sam", "metadata", "faithfulness")
                      else [])


def test_the_optional_stage_runs_before_the_statistics(tmp_path):
    parser = argparse.ArgumentParser()
    pipeline.configure(parser)
    names = [n for n, _ in pipeline.stage_argvs(parser.parse_args([str(tmp_path), str(tmp_path / "ds"),
                                                                    "--faithfulness"]))]
    assert names[-2:] == ["faithfulness", "stats"]
    only = [n for n, _ in pipeline.stage_argvs(parser.parse_args([str(tmp_path), str(tmp_path / "ds"),
                                                                   "--only", "faithfulness"]))]
    assert only == ["faithfulness"]
