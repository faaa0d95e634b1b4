"""Qwen3-VL: Qwen2-VL's prompt layout (the same image run and chat turns) with 16-px patches
merged 2x2, so one grid cell per 32x32 px, and DeepStack (vision features added to the first
language layers' states: the final norm's output is still what the LM head reads)."""

from precompute.families.base import Family

QWEN3_VL = Family("qwen3_vl", "Qwen3-VL", "Qwen3VLForConditionalGeneration", factor=32)
