"""Memory on the CPU: readings from Linux's /proc, and a cap that turns "the machine ran out"
into an exception.

Without a cap, a pass that needs more memory than the machine has is not an error Python sees:
the kernel's OOM killer ends the whole process (a stage run, a benchmark), and often the shell
around it. Under `capped`, this process's address space may grow by the memory available now
(less a margin) and no further, so the allocation that would have gone beyond fails where it is
made: numpy raises MemoryError and torch's CPU allocator a RuntimeError "can't allocate memory",
which `capped` raises as OutOfMemory. The cap counts address space, not resident pages (reserved
but untouched pages count too), so it errs on the side of refusing. It is a CPU tool: CUDA maps
far more address space than it uses, so callers apply it to CPU work only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

GIB = 1024**3
MARGIN = 1 * GIB  # left to the rest of the machine when a cap is set from MemAvailable


def _field(path: str, name: str) -> float:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:  # not Linux
        pass
    return float("nan")


def process(name: str, pid: int | str = "self") -> float:
    """A field of /proc/<pid>/status in bytes (NaN where absent): VmRSS (resident now), VmHWM
    (peak since the last reset), VmSize (address space)."""
    return _field(f"/proc/{pid}/status", name)


def system(name: str) -> float:
    """A field of /proc/meminfo in bytes (NaN where absent): MemTotal, MemAvailable."""
    return _field("/proc/meminfo", name)


# How torch reports a failed allocation: its CPU allocator ("DefaultCPUAllocator: can't allocate
# memory"), errno 12 ("Cannot allocate memory"), and oneDNN (the CPU convolutions, e.g. the vision
# encoder's patch embedding), which fails to create its primitive when it cannot get its buffers
ALLOCATION_FAILED = ("allocate", "out of memory", "could not create a primitive")


def parse_size(text: str) -> float:
    """'8G', '512M', '1.5G', '2048K' or bytes -> bytes (binary units, as free and SLURM count)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        size = float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 8G, 512M)") from None
    if not math.isfinite(size) or size <= 0:
        raise ValueError(f"{text!r}: a size must be positive")
    return size


class OutOfMemory(Exception):
    """An allocation under `capped` went beyond the cap. `headroom`: the bytes it allowed."""

    def __init__(self, message: str, headroom: float):
        super().__init__(message)
        self.headroom = headroom


def default_headroom() -> float:
    """What may be allocated from now: the memory available less MARGIN (NaN off Linux)."""
    return system("MemAvailable") - MARGIN


@contextmanager
def capped(headroom: float | None = None) -> Iterator[None]:
    """Run the block with this process's address space capped at its size now plus HEADROOM
    bytes (default: default_headroom()); an allocation beyond it raises OutOfMemory. Where the
    cap cannot be read or set (not Linux) the block runs uncapped."""
    try:
        import resource
    except ImportError:  # Windows
        yield
        return
    headroom = default_headroom() if headroom is None else headroom
    size = process("VmSize")
    if math.isnan(size) or math.isnan(headroom):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = int(size + max(headroom, 0))
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    except MemoryError as exc:
        raise OutOfMemory(f"MemoryError {exc}"[:300], headroom) from exc
    except RuntimeError as exc:
        if not any(marker in str(exc) for marker in ALLOCATION_FAILED):
            raise
        raise OutOfMemory(str(exc)[:300], headroom) from exc
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
