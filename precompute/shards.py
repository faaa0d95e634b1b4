"""What a shard is: `--shard K/N` selects the paintings whose id hashes to K modulo N.

The assignment is a stable hash of the painting id (CRC-32), so N jobs split the work without
overlap or coordination, and a shard run again (resubmitted, resumed) gets the same paintings.
"""

from __future__ import annotations

import zlib

from contract.errors import UserError


class ShardError(UserError, ValueError):
    """A malformed --shard."""


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' (0 <= K < N) -> (K, N)."""
    if not text:
        return None
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ShardError(f"--shard must look like K/N, got {text!r}") from None
    if n < 1:
        raise ShardError(f"--shard {text}: N (the number of shards) must be at least 1")
    if not 0 <= k < n:
        raise ShardError(f"--shard {text}: K must be 0 to {n - 1} (shards are numbered from 0 to N-1); "
                         f"processing every painting instead would overlap the other shards")
    return k, n


def in_shard(pid: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment by a hash of the id: shards never overlap and need no coordination."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(pid.encode()) % n == k
