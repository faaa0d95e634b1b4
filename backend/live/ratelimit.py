"""How often one client may create jobs: a sliding window per client address, bounded in memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque


class RateLimit:
    """At most `limit` events per `window` seconds per key; remembers at most `keys` keys (the least
    recently seen are forgotten first, so a flood of addresses cannot grow the table)."""

    def __init__(self, limit: int, window: float, keys: int = 10_000, clock=time.monotonic):
        self.limit, self.window, self.keys, self.clock = limit, window, keys, clock
        self.seen: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int:
        """0 and the event counted if `key` may go on; else the seconds until it may (nothing counted)."""
        now = self.clock()
        times = self.seen.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self.seen[key] = times
        while len(self.seen) > self.keys:
            self.seen.popitem(last=False)
        if len(times) >= self.limit:
            return max(1, math.ceil(times[0] + self.window - now))
        times.append(now)
        return 0
