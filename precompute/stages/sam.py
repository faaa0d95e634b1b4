"""`tamscope sam DATASET`: SAM 3 masks for the concrete-object and iconographic phrases.

For every CVO and ICON span, SAM 3 (`facebook/sam3` through transformers Sam3Model and
Sam3Processor; any id or folder) is prompted with the span's text. Instances scoring above
`--threshold` (0.5; score = sigmoid(query logit) x sigmoid(presence logit)) are kept, their
masks (`--mask-threshold` 0.5 on the sigmoid, after bilinear resizing to the canvas) are
united and stored as sam/<i>.png (canvas size, 0/255) with the instance count and scores;
the IoU with the span's Otsu mask (contract.metrics, the same mask the explorer draws) is
recorded (masks committed with the record, contract.commit). An instance whose mask is empty at canvas size does not count. No instance is
recorded as such (instances 0, no mask, no IoU). The image is encoded once per painting and
reused for every phrase.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from contract.metrics import iou, otsu
from contract.schema import SEGMENTABLE, ModelRef, PaintingRecord, SamResult
from contract.store import Dataset, encode_png, read_png_u8
from precompute.lock import update_manifest, writer
from precompute.models import Lazy, load_with_processor, model_revision
from precompute.runner import Output, add_model_options, add_run_options, load_options, parse_shard, run_stage

STAGE = "sam"
DEFAULT_MODEL = "facebook/sam3"


class Segmenter:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._lazy = Lazy(self._load, STAGE)

    def _load(self):
        from transformers import Sam3Model, Sam3Processor

        a = self.args
        return load_with_processor(Sam3Processor.from_pretrained, Sam3Model.from_pretrained, a.model, "segmenter",
                                   a.device, a.dtype, a.revision, **load_options(a))

    def use_loaded(self, processor, model) -> None:
        """Segment with this processor and model instead of loading `--model` (a benchmark's)."""
        self._lazy = Lazy.holding((processor, model), STAGE)

    @property
    def loaded(self) -> bool:
        return self._lazy.loaded

    def ref(self) -> ModelRef:
        _, model = self._lazy.get()
        return ModelRef(id=self.args.model, revision=model_revision(model, self.args.model, self.args.revision))

    def segment(self, image: Image.Image, prompts: list[str]) -> list[tuple[np.ndarray, list[float]]]:
        """For each prompt: (union mask H x W bool, scores of the instances it unites)."""
        import torch

        processor, model = self._lazy.get()
        inputs = processor(images=image, return_tensors="pt").to(model.device)
        out = []
        with torch.inference_mode():
            vision = model.get_vision_features(pixel_values=inputs["pixel_values"].to(model.dtype))
            for prompt in prompts:
                text = processor.tokenizer(prompt, padding="max_length", max_length=32, truncation=True,
                                           return_tensors="pt").to(model.device)
                pred = model(vision_embeds=vision, input_ids=text["input_ids"], attention_mask=text["attention_mask"])
                res = processor.post_process_instance_segmentation(
                    pred, threshold=self.args.threshold, mask_threshold=self.args.mask_threshold,
                    target_sizes=[[image.height, image.width]])[0]
                masks = res["masks"].bool().cpu().numpy()  # (K, H, W)
                nonempty = masks.any(axis=(1, 2))  # (K,)
                union = masks[nonempty].any(axis=0) if nonempty.any() else np.zeros((image.height, image.width), bool)
                out.append((union, [round(float(s), 4) for s, keep in zip(res["scores"], nonempty, strict=True) if keep]))
        return out


def process(dataset: Dataset, segmenter: Segmenter):
    def apply(record: PaintingRecord) -> Output:
        spans = [s for s in record.spans if s.category in SEGMENTABLE]
        files: dict[str, bytes] = {}
        if not spans:
            return Output(record, files)
        folder = dataset.painting_dir(record.id)
        with Image.open(folder / record.canvas.path) as im:
            image = im.convert("RGB")
        size = (record.canvas.width, record.canvas.height)
        for span, (mask, scores) in zip(spans, segmenter.segment(image, [s.text for s in spans]), strict=True):
            if not scores:
                span.sam = SamResult(instances=0)
                continue
            path = f"sam/{span.index}.png"
            files[path] = encode_png(mask.astype(np.uint8) * 255)
            overlap = None
            if span.map is not None:
                _, otsu_mask = otsu(read_png_u8(folder / span.map.png), size)
                overlap = iou(otsu_mask, mask)
            span.sam = SamResult(mask=path, instances=len(scores), scores=scores, iou=overlap)
        return Output(record, files)

    return apply


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="SAM 3 hub id or folder")
    parser.add_argument("--threshold", type=float, default=0.5, help="instance score threshold")
    parser.add_argument("--mask-threshold", type=float, default=0.5, help="mask probability threshold")
    add_model_options(parser)
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    segmenter = Segmenter(args)
    settings = {"model": args.model, "revision": args.revision, "threshold": args.threshold,
                "mask_threshold": args.mask_threshold}
    shard = parse_shard(args.shard)
    with writer(args.dataset, shard):
        summary = run_stage(STAGE, dataset, settings, process(dataset, segmenter), shard=shard, force=args.force,
                            needs="spanmaps")
        if segmenter.loaded:
            update_manifest(dataset, shard, models={"segmenter": segmenter.ref()})
    return 1 if summary.failed else 0
