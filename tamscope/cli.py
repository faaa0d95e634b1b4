"""The `tamscope` console script.

Each subcommand lives in its own module exposing `configure(parser)` and `run(args) -> int`.
Only the chosen command's module is imported, so `tamscope serve` never imports torch and
`tamscope --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from contract.errors import UserError

# name -> (module, one-line help). Order is the order of `tamscope --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "precompute": ("precompute.pipeline", "run every stage over a folder of paintings"),
    "describe": ("precompute.stages.describe", "caption paintings with Qwen2-VL and compute a TAM per token"),
    "reliance": ("precompute.stages.reliance", "visual reliance per token (image vs blurred image)"),
    "spans": ("precompute.stages.spans", "type caption spans with a text LLM"),
    "spanmaps": ("precompute.stages.spanmaps", "per-span maps, entropy, Gini, top-10% mass, Otsu"),
    "sam": ("precompute.stages.sam", "SAM 3 masks for CVO/ICON spans and IoU with the Otsu mask"),
    "metadata": ("precompute.stages.metadata", "grade the title/artist the caption claims"),
    "faithfulness": ("precompute.stages.faithfulness",
                     "other methods' span maps (attention, gradient, iGOS++...) and deletion/insertion scores"),
    "stats": ("contract.stats", "dataset statistics for the dashboard"),
    "submit": ("precompute.submit", "precompute on a SLURM cluster: a job array of shards, then the merge"),
    "merge": ("precompute.merge", "merge shards into one dataset manifest and statistics"),
    "index": ("contract.index", "build the dataset's search index (index.sqlite) if missing or stale"),
    "validate": ("contract.validate", "check a dataset folder against the contract"),
    "serve": ("backend.cli", "serve the explorer and the JSON API"),
    "import-tamart": ("sources.tamart_import", "import the paper authors' project-page data"),
    "export-site": ("backend.site", "write the explorer and a dataset as a static site"),
    "demo": ("backend.demo", "download the published dataset and open the explorer"),
    "fetch-wikiart": ("sources.wikiart", "download the most viewed WikiArt paintings as input"),
    "build-smoke": ("precompute.smoke", "rebuild the embedded smoke dataset with tiny models"),
}


def _overview() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines) + "\n\n`tamscope COMMAND --help` for a command's options."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tamscope COMMAND [options]\n\n" + _overview())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tamscope: unknown command {name!r}\n\n{_overview()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"tamscope {name}", description=help_)
    module.configure(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"tamscope {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished paintings are saved; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
