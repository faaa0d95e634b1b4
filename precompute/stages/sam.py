"""`tamscope sam DATASET`: SAM 3 masks for the concrete-object and iconographic phrases.

For every CVO and ICON span, SAM 3 (`facebook/sam3` through transformers Sam3Model and
Sam3Processor; any id or folder) is prompted with the span's text. Instances scoring at least
`--threshold` (0.5) are kept, their masks (`--mask-threshold` 0.5) are united at canvas size
and stored as sam/<i>.png with the instance count and scores; the IoU with the span's Otsu
mask (tamscope.metrics, the same mask the explorer draws) is recorded. No instance is
recorded as such (instances 0, no mask, no IoU). The image is encoded once per painting and
reused for every phrase.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from precompute.models import (
    ModelNotAvailable,
    load_pretrained,
    model_revision,
    resolve_device,
    resolve_dtype,
)
from precompute.runner import parse_shard, run_stage
from tamscope.metrics import iou, otsu
from tamscope.schema import SEGMENTABLE, ModelRef, PaintingRecord, SamResult
from tamscope.store import Dataset, atomic_write_bytes, encode_png, read_png_u8

STAGE = "sam"
DEFAULT_MODEL = "facebook/sam3"


class Segmenter:
    def __init__(self, args: argparse.Namespace):
        self.args, self.model, self.processor, self.error = args, None, None, None

    def load(self):
        if self.error is not None:
            raise self.error
        if self.model is None:
            from transformers import Sam3Model, Sam3Processor

            device = resolve_device(self.args.device)
            kw = {"revision": self.args.revision} if self.args.revision else {}
            try:
                self.processor = load_pretrained(Sam3Processor.from_pretrained, self.args.model, "segmenter", **kw)
                self.model = load_pretrained(Sam3Model.from_pretrained, self.args.model, "segmenter",
                                             dtype=resolve_dtype(self.args.dtype, device), **kw).to(device).eval()
            except ModelNotAvailable as exc:
                self.error = exc
                print(f"{STAGE}: {exc}")
                raise
        return self

    def segment(self, image: Image.Image, prompts: list[str]) -> list[tuple[np.ndarray, list[float]]]:
        """For each prompt: (union mask H x W bool, instance scores)."""
        import torch

        self.load()
        inputs = self.processor(images=image, return_tensors="pt").to(self.model.device)
        out = []
        with torch.inference_mode():
            vision = self.model.get_vision_features(pixel_values=inputs["pixel_values"].to(self.model.dtype))
            for prompt in prompts:
                text = self.processor.tokenizer(prompt, padding="max_length", max_length=32, truncation=True,
                                                return_tensors="pt").to(self.model.device)
                pred = self.model(vision_embeds=vision, input_ids=text["input_ids"],
                                  attention_mask=text["attention_mask"])
                res = self.processor.post_process_instance_segmentation(
                    pred, threshold=self.args.threshold, mask_threshold=self.args.mask_threshold,
                    target_sizes=[[image.height, image.width]])[0]
                masks = res["masks"].bool().cpu().numpy()  # (K, H, W)
                union = masks.any(axis=0) if len(masks) else np.zeros((image.height, image.width), bool)
                out.append((union, [round(float(s), 4) for s in res["scores"]]))
        return out


def process(dataset: Dataset, segmenter: Segmenter):
    def apply(record: PaintingRecord) -> PaintingRecord:
        spans = [s for s in record.spans if s.category in SEGMENTABLE]
        if not spans:
            return record
        folder = dataset.painting_dir(record.id)
        with Image.open(folder / record.canvas.path) as im:
            image = im.convert("RGB")
        size = (record.canvas.width, record.canvas.height)
        for span, (mask, scores) in zip(spans, segmenter.segment(image, [s.text for s in spans]), strict=True):
            if not scores or not mask.any():
                span.sam = SamResult(instances=0, scores=scores)
                continue
            path = f"sam/{span.index}.png"
            atomic_write_bytes(folder / path, encode_png(mask.astype(np.uint8) * 255))
            overlap = None
            if span.map is not None:
                _, otsu_mask = otsu(read_png_u8(folder / span.map.png), size)
                overlap = iou(otsu_mask, mask)
            span.sam = SamResult(mask=path, instances=len(scores), scores=scores, iou=overlap)
        return record

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="SAM 3 hub id or folder")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--threshold", type=float, default=0.5, help="instance score threshold")
    parser.add_argument("--mask-threshold", type=float, default=0.5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--shard", default=None)
    parser.add_argument("--force", action="store_true")


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    segmenter = Segmenter(args)
    settings = {"model": args.model, "revision": args.revision, "threshold": args.threshold,
                "mask_threshold": args.mask_threshold}
    summary = run_stage(STAGE, dataset, settings, process(dataset, segmenter), shard=parse_shard(args.shard),
                        force=args.force, needs="spanmaps")
    if segmenter.model is not None:
        dataset.refresh_manifest(models={"segmenter": ModelRef(
            id=args.model, revision=model_revision(segmenter.model, args.model, args.revision))})
    return 1 if summary.failed else 0
