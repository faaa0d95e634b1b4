"""Memory readings for benchmarks and tests, from Linux's /proc (bytes; NaN where a field is absent).

The readers are the product's (precompute.memory); this adds the peak reset benchmarks use."""

from __future__ import annotations

from precompute.memory import process, system

__all__ = ["process", "reset_peak", "system"]


def reset_peak() -> float:
    """Set the peak mark (VmHWM) to the current RSS, so a later peak is one step's own; the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not permitted: the peak then counts from the process start
        pass
    return process("VmRSS")
