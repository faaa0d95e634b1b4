"""Memory readings for benchmarks and tests, from Linux's /proc (bytes; NaN where a field is absent)."""

from __future__ import annotations


def _field(path: str, name: str) -> float:
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    return float("nan")


def process(name: str, pid: int | str = "self") -> float:
    """A field of /proc/<pid>/status: VmRSS (resident now), VmHWM (peak since the last reset)."""
    return _field(f"/proc/{pid}/status", name)


def system(name: str) -> float:
    """A field of /proc/meminfo: MemTotal, MemAvailable."""
    return _field("/proc/meminfo", name)


def reset_peak() -> float:
    """Set the peak mark (VmHWM) to the current RSS, so a later peak is one step's own; the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not permitted: the peak then counts from the process start
        pass
    return process("VmRSS")
