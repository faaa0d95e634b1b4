"""`tamscope build-smoke [OUT]`: rebuild the embedded smoke dataset, byte for byte.

Four synthetic paintings drawn by code go through the real pipeline with tiny random-weight
models built from configs (precompute/tiny/): the captioner (describe, TAM, reliance) and
SAM 3. A random-weight text LLM cannot write JSON, so spans come from the span classifier's
built-in keyword baseline (`--text-llm lexicon`) and metadata from the string match alone.
Nothing is downloaded, so it runs anywhere in well under a minute. The captions are noise by
design: the dataset exists to exercise every code path, the server and the explorer, and says
so in its label wherever it is shown.

Determinism: fixed seeds, one thread, SOURCE_DATE_EPOCH for every timestamp, deterministic
PNG/JPEG/safetensors encoders, and numerics that do not depend on the CPU: float64 models and
the library code paths pinned (PINNED_NUMERICS) to ones every x86-64 CPU runs the same way,
since AVX2 and AVX-512 kernels (chosen at run time) add in different orders and change the
last bits, which a byte-for-byte rebuild would see. So `git diff` after a rebuild shows
nothing, on this machine or another.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
from PIL import Image, ImageDraw

from contract.store import atomic_write_bytes

LABEL = "Produced by random-weight test models: captions and spans are noise by design."
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z, the timestamp of every smoke record

# stem -> (ground truth, painter): simple compositions with clear regions, so a real model
# would have something to ground and the explorer has shapes to show.
PAINTINGS = {
    "harbour-at-dusk": ({"title": "Harbour at Dusk", "artist": "Test Painter", "year": 1890,
                         "style": "Impressionism", "genre": "marina"}, (448, 336)),
    "village-under-stars": ({"title": "Village under Stars", "artist": "Test Painter", "year": 1889,
                             "style": "Post-Impressionism", "genre": "landscape"}, (336, 448)),
    "red-still-life": ({"title": "Red Still Life", "artist": "Second Painter", "year": 1912,
                        "style": "Fauvism", "genre": "still life"}, (224, 224)),
    "portrait-in-blue": ({"title": "Portrait in Blue", "artist": "Second Painter", "year": 1901,
                          "style": "Expressionism", "genre": "portrait"}, (280, 392)),
}


def draw_painting(stem: str, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (30, 40, 80))
    d = ImageDraw.Draw(img)
    if stem == "harbour-at-dusk":
        d.rectangle([0, 0, w, h * 0.55], fill=(240, 150, 80))
        d.rectangle([0, h * 0.55, w, h], fill=(40, 70, 120))
        d.ellipse([w * 0.6, h * 0.25, w * 0.75, h * 0.45], fill=(255, 220, 120))
        d.polygon([(w * 0.15, h * 0.7), (w * 0.45, h * 0.7), (w * 0.38, h * 0.8), (w * 0.2, h * 0.8)],
                  fill=(90, 50, 30))
    elif stem == "village-under-stars":
        d.rectangle([0, 0, w, h], fill=(15, 25, 70))
        for i in range(12):
            x, y = (37 * i * 7) % w, (53 * i * 3) % int(h * 0.5)
            d.ellipse([x, y, x + 14, y + 14], fill=(250, 240, 150))
        for i in range(5):
            x = i * w / 5
            d.rectangle([x + 6, h * 0.7, x + w / 5 - 6, h * 0.9], fill=(120, 90, 60))
            d.polygon([(x + 2, h * 0.7), (x + w / 10, h * 0.6), (x + w / 5 - 2, h * 0.7)], fill=(80, 40, 30))
        d.polygon([(w * 0.1, h), (w * 0.2, h * 0.3), (w * 0.3, h)], fill=(10, 60, 30))
    elif stem == "red-still-life":
        d.rectangle([0, 0, w, h], fill=(200, 40, 40))
        d.rectangle([0, h * 0.65, w, h], fill=(120, 80, 50))
        d.ellipse([w * 0.2, h * 0.4, w * 0.45, h * 0.68], fill=(250, 200, 40))
        d.ellipse([w * 0.5, h * 0.45, w * 0.7, h * 0.68], fill=(60, 160, 60))
    else:
        d.rectangle([0, 0, w, h], fill=(40, 60, 140))
        d.ellipse([w * 0.3, h * 0.15, w * 0.7, h * 0.45], fill=(230, 190, 160))
        d.rectangle([w * 0.2, h * 0.45, w * 0.8, h], fill=(20, 30, 90))
    return img


def write_smoke_paintings(folder: Path) -> Path:
    """The input folder: PNGs plus annotations.json (committed under data/smoke-paintings)."""
    folder.mkdir(parents=True, exist_ok=True)
    annotations = {}
    for stem, (truth, size) in PAINTINGS.items():
        path = folder / f"{stem}.png"
        img = draw_painting(stem, size)
        tmp = folder / f".{stem}.png.tmp"
        img.save(tmp, format="PNG", optimize=False, compress_level=9)
        os.replace(tmp, path)
        annotations[stem] = truth
    atomic_write_bytes(folder / "annotations.json", orjson.dumps(annotations, option=orjson.OPT_INDENT_2) + b"\n")
    return folder


def build_tiny_models(folder: Path) -> dict[str, Path]:
    """Manifest role -> folder of the tiny model."""
    from precompute.tiny.qwen2vl import build_tiny_qwen2vl
    from precompute.tiny.sam3 import build_tiny_sam3

    return {
        "captioner": build_tiny_qwen2vl(folder / "tiny-qwen2vl"),
        "segmenter": build_tiny_sam3(folder / "tiny-sam3"),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, nargs="?", default=Path("data/smoke"), help="dataset folder")
    parser.add_argument("--paintings", type=Path, default=Path("data/smoke-paintings"),
                        help="where the synthetic input paintings are written")
    parser.add_argument("--max-new-tokens", type=int, default=40)


# Read when torch, MKL and oneDNN load, so the build runs in a fresh process with them set:
# ATen's portable kernels instead of its AVX2/AVX-512 ones (random init included), MKL's
# conditional numerical reproducibility mode, oneDNN (the patch-embedding convolution) on SSE4.1.
PINNED_NUMERICS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
                   "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pinned() -> bool:
    return "torch" not in sys.modules and all(os.environ.get(k) == v for k, v in PINNED_NUMERICS.items())


def run(args: argparse.Namespace) -> int:
    if not pinned():  # start over in a process whose libraries load with the pinned settings
        cmd = [sys.executable, "-m", "tamscope.cli", "build-smoke", str(Path(args.out).resolve()),
               "--paintings", str(Path(args.paintings).resolve()), "--max-new-tokens", str(args.max_new_tokens)]
        return subprocess.run(cmd, env={**os.environ, **PINNED_NUMERICS}, check=False).returncode

    import torch

    from precompute import pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thread count changes float summation order, so bytes
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        write_smoke_paintings(args.paintings)
        with tempfile.TemporaryDirectory(prefix="tamscope-smoke-") as tmp:
            models = build_tiny_models(Path(tmp))
            building = Path(tmp) / "dataset"
            argv = [str(args.paintings), str(building),
                    "--captioner", str(models["captioner"]), "--text-llm", "lexicon",
                    "--segmenter", str(models["segmenter"]), "--max-new-tokens", str(args.max_new_tokens),
                    "--sam-threshold", "0.2", "--name", "smoke", "--device", "cpu", "--dtype", "float64",
                    # every method's maps and curves for the first phrase of each painting, 2 steps,
                    # iGOS++ 1 x 1 (its default: 100 passes a phrase): about a minute more (pinned float64 kernels).
                    # Per-token curves (--faithfulness-per-token) stay out: they lengthen (by minutes) the
                    # build that CI repeats; tests/test_faithfulness_*.py cover them
                    "--faithfulness", "--faithfulness-max-spans", "1", "--faithfulness-steps", "2",
                    "--faithfulness-igos-iterations", "1", "--faithfulness-igos-ig-steps", "1"]
            parser = argparse.ArgumentParser()
            pipeline.configure(parser)
            code = pipeline.run(parser.parse_args(argv))
            finish_manifest(building, models)
            scrub_paths(building, tmp)
            if args.out.exists():
                shutil.rmtree(args.out)
            shutil.copytree(building, args.out)
    finally:
        torch.set_num_threads(threads)
        if epoch is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = epoch
    print(f"smoke dataset written to {args.out}")
    return code


def scrub_paths(dataset_dir: Path, tmp: str) -> None:
    """Temporary folder names would make every rebuild differ (and leak machine paths)."""
    for path in sorted(dataset_dir.rglob("*.json")):
        data = path.read_bytes()
        clean = data.replace(tmp.encode(), b"tiny-models")
        if clean != data:
            atomic_write_bytes(path, clean)


def finish_manifest(dataset_dir: Path, models: dict[str, Path]) -> None:
    """Label the dataset and replace temporary model folders by stable names."""
    from contract.store import Dataset

    ds = Dataset(dataset_dir)
    manifest = ds.manifest()
    data = manifest.model_dump()
    data["label"] = LABEL
    data["description"] = ("Four synthetic paintings drawn by code, run through the real pipeline with "
                           "tiny random-weight models (precompute/tiny). Rebuild: make smoke-dataset.")
    for role, ref in data["models"].items():
        if role in models:  # the lexicon baseline keeps its own name
            ref["id"] = f"tiny-random-{role}"
            ref["revision"] = "built-by-precompute.tiny"
    ds.save_manifest(type(manifest).model_validate(data))
