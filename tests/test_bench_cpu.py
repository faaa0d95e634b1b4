"""`make bench-cpu` runs the stages' own code on real-size models for ~15 minutes; its `--tiny`
mode runs the same code paths on tiny models, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tiny_run_times_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.cpu", "--tiny", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for stage in ("describe", "reliance", "spans", "spanmaps", "sam", "metadata"):
        assert re.search(rf"^{stage}\s+\d+\.\d", done.stdout, re.M), f"no timing line for {stage}"
    assert re.search(r"total per painting: \d+ s .*with --text-llm lexicon: \d+ s", done.stdout)
    # the three targets, measured in the same run
    assert re.search(r"^describe / a bare generate of the same caption \(.*same ids: True\): \d+\.\d+x", done.stdout, re.M)
    assert re.search(r"^reliance / the old two-pass reliance .*: \d+\.\d+x", done.stdout, re.M)
    assert re.search(r"^lexicon pipeline per painting: \d+ s", done.stdout, re.M)
    results = json.loads(out.read_text())
    assert results["describe"]["vision_passes"] == 1  # one vision pass per image
    assert len(results["reliance"]["vision"]) == 1 and results["reliance"]["logp_image_from"] == "describe"
    assert len(results["reliance_two_pass"]["passes"]) == 2
    assert results["reliance_two_pass"]["logp_image_from"] == "teacher-forced pass"
    assert set(results["targets"]) == {"describe_over_bare_generate", "reliance_over_two_pass", "lexicon_per_painting"}


def test_the_benchmark_patches_no_module():
    """The stages give the benchmark its injection points (describe's clock, Lazy.holding,
    use_loaded): bench/cpu.py assigns no attribute of an imported module or loader."""
    source = (REPO / "bench" / "cpu.py").read_text()
    assert not re.search(r"^\s*[\w.]*(tam_module|describe|reliance|spans|metadata|sam)\.\w+\s*=[^=]", source, re.M)
    assert "_lazy" not in source and "compute_tam" not in source.split('"""', 2)[2]


def test_tiny_run_times_the_other_captioner_families(tmp_path):
    """--families: describe and reliance on each other family's architecture (tiny configs here,
    a small painting and short captions: the code path, not the numbers); --families-only leaves
    the default pipeline out (the test above runs it)."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench.cpu", "--tiny", "--families", "all", "--families-only",
                           "--new-tokens", "48",
                           "--span-tokens", "16", "--width", "448", "--height", "336", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert "describe" not in results and "spans" not in results and "total:" not in done.stdout  # families only
    assert set(results["families"]) == {"qwen2_5_vl", "qwen3_vl", "qwen3_5", "internvl", "llava_onevision"}
    for family in ("qwen2_5_vl", "qwen3_vl", "qwen3_5", "internvl", "llava_onevision"):
        assert re.search(rf"^{family}\s+(Qwen|OpenGVLab|llava-hf)/\S+: .*describe\s+\d+\.\d.*reliance\s+\d+\.\d",
                         done.stdout, re.M), family
        timed = results["families"][family]
        assert timed["describe"]["vision_passes"] == 1 and timed["reliance"]["logp_image_from"] == "describe"
        gh, gw = timed["describe"]["grid"]
        assert timed["describe"]["image_tokens"] == gh * gw and abs(gw / gh - 448 / 336) < 0.2
        assert timed["describe"]["n_tokens"] == 48
    # the tiny InternVL's 112-px tiles: a 448x336 painting is 4x3 tiles of (112 / 28)^2 = 16 tokens,
    # and its thumbnail's 16 tokens are in the prompt but not on the grid
    internvl = results["families"]["internvl"]["describe"]
    assert internvl["grid"] == [3 * 4, 4 * 4] and internvl["prompt_image_tokens"] == 12 * 16 + 16
    assert re.search(r"^internvl .*\(192 vision tokens, \+ 16 of the thumbnail\)", done.stdout, re.M)
    # the tiny LLaVA-OneVision's 60-px crops (4 x 4 tokens): a 4:3 painting is 3 x 2 crops (the layout of at
    # most 10 crops nearest its shape), and the prompt holds the 4 x 4 base grid and a newline per grid row
    llava = results["families"]["llava_onevision"]["describe"]
    assert llava["grid"] == [2 * 4, 3 * 4] and llava["prompt_image_tokens"] == 16 + 8 * (12 + 1)
    for family in ("qwen2_5_vl", "qwen3_vl", "qwen3_5"):
        assert results["families"][family]["describe"]["prompt_image_tokens"] == \
            results["families"][family]["describe"]["image_tokens"]
    # Qwen3-VL's cells are 32 px, Qwen2.5-VL's 28: the same painting gives it fewer cells
    assert results["families"]["qwen3_vl"]["describe"]["image_tokens"] < \
        results["families"]["qwen2_5_vl"]["describe"]["image_tokens"]


def test_the_real_size_configs_have_the_published_sizes():
    """SMALLEST's new rows, built on the meta device (no memory, no weights): InternVL3-1B-hf has
    0.94 B parameters (its model card; a head tied to the embedding would give 0.80 B), Qwen3.5-0.8B
    0.8-0.9 B (0.8 B on its card, 0.9 B with the multi-token-prediction layer transformers does not
    build), LLaVA-OneVision-0.5B 0.89 B (SigLIP's 0.40 B + Qwen2-0.5B's 0.49 B, tied head), and each
    family's image token is its tokenizer's."""
    import torch

    from bench.cpu import captioner_parts
    from precompute.families import FAMILIES

    sizes = {}
    for family in ("internvl", "qwen3_5", "llava_onevision"):
        tok, cfg, proc = captioner_parts(family, tiny=False)
        assert cfg.model_type == family
        assert tok.convert_ids_to_tokens(cfg.image_token_id) == FAMILIES[family].tokens["image"]
        with torch.device("meta"):
            model = FAMILIES[family].model_class()._from_config(cfg, dtype=torch.float32)
        sizes[family] = sum(p.numel() for p in model.parameters())
    assert abs(sizes["internvl"] / 0.94e9 - 1) < 0.01, sizes
    assert 0.8e9 <= sizes["qwen3_5"] <= 0.9e9, sizes
    assert abs(sizes["llava_onevision"] / 0.89e9 - 1) < 0.02, sizes  # "0.9B" on its card: SigLIP 0.4 + Qwen2 0.49
