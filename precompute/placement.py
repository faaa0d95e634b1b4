"""Reading a module's weights wherever accelerate placed them (`--device-map`).

With `device_map="auto"` a large checkpoint is spread over the GPUs there are, and the layers
that do not fit are offloaded to CPU memory or disk: their parameters are then `meta` tensors
outside a forward pass, and accelerate's hook brings them to the execution device for the pass.
TAM reads the LM head's weights outside any forward pass (only the rows of the classes that
occur), so it asks for them through `weights_of`, which does what the hook does for the
duration. The final norm's output is recorded by a hook during generation, on whatever device
the norm runs; the TAM engine moves the head rows to the states' device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Weights:
    weight: Any  # (V, D)
    bias: Any  # (V,) or None


@contextlib.contextmanager
def weights_of(module) -> Iterator[Weights]:
    """The weight and bias of a Linear-like module as real tensors for the duration, offloaded or not."""
    from accelerate.utils import align_module_device, has_offloaded_params

    if not has_offloaded_params(module):
        yield Weights(module.weight, getattr(module, "bias", None))
        return
    with align_module_device(module):
        yield Weights(module.weight, getattr(module, "bias", None))


def execution_device(module):
    """Where a module computes: its hook's execution device when accelerate placed or offloaded
    it (its weights may be `meta` then), else its weights' device."""
    hook = getattr(module, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        import torch

        return torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    return next(module.parameters()).device


def parse_device_map(value: str | None):
    """--device-map: None, a strategy accelerate knows ("auto", "balanced", "balanced_low_0",
    "sequential"), or a JSON object {module name: device} ("cpu", "disk", 0, "cuda:1", ...)."""
    import json

    if value is None or value in ("auto", "balanced", "balanced_low_0", "sequential"):
        return value
    try:
        mapping = json.loads(value)
    except json.JSONDecodeError:
        mapping = None
    if not isinstance(mapping, dict) or not mapping:
        raise SystemExit(f"--device-map: expected auto, balanced, balanced_low_0, sequential or a JSON object "
                         f"{{module: device}}, got {value!r}")
    return mapping
