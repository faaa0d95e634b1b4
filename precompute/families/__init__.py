"""Captioner families, one module each, behind one interface (precompute.families.base.Family).

`--model` picks the family from the checkpoint config's `model_type` (family_for); docs/models.md
lists them and what each adapter does."""

from __future__ import annotations

from precompute.families.base import Family
from precompute.families.internvl import INTERNVL
from precompute.families.llava_onevision import LLAVA_ONEVISION
from precompute.families.qwen2_vl import QWEN2_5_VL, QWEN2_VL
from precompute.families.qwen3_5 import QWEN3_5
from precompute.families.qwen3_vl import QWEN3_VL

FAMILIES: dict[str, Family] = {f.model_type: f for f in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL, QWEN3_5, INTERNVL,
                                                          LLAVA_ONEVISION)}


def supported() -> str:
    """'Qwen2-VL (qwen2_vl), ...': for error messages."""
    return ", ".join(f"{f.label} ({f.model_type})" for f in FAMILIES.values())


def family_for(model_type: str | None) -> Family | None:
    return FAMILIES.get(model_type or "")
