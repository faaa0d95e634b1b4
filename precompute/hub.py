"""Whether a model load may reach the hub: downloads by default, never a long hang without network.

The decision, per load of a hub id (a local folder never needs the network):

1. `--offline` (every model-running stage and `tamscope precompute`), or HF_HUB_OFFLINE=1 /
   TRANSFORMERS_OFFLINE=1 in the environment: the cache only, the network is never touched.
2. TAMSCOPE_ONLINE=1: the hub, without probing first (a network where the probe cannot tell).
3. Otherwise one short HTTP probe of the hub endpoint (HF_ENDPOINT, default huggingface.co),
   PROBE_TIMEOUT seconds, once per endpoint and process: any answer at all means reachable and
   the model downloads (or updates) as transformers does it; no answer means the cache only,
   so a machine without network gets "not on this machine" at once instead of retries.

"Cache only" is `local_files_only=True` for the files, inside `cache_only()` for the rest:
huggingface_hub reads HF_HUB_OFFLINE once, when imported, and otherwise makes requests of its
own even for a cached file (2.x fetches an "agent harness registry" to build its user agent),
so the constant it reads is set for the duration of the load (tests/test_hub.py guards every
socket to show that nothing connects).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

PROBE_TIMEOUT = 3.0  # seconds: a reachable hub answers within this; more would be the hang we avoid
DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of a boolean variable


@dataclass(frozen=True)
class HubAccess:
    """How one load reaches the hub: `online` or the cache only, and why (for the error message)."""

    online: bool
    reason: str  # "--offline", "HF_HUB_OFFLINE=1", "TAMSCOPE_ONLINE=1", "reachable", "unreachable"
    endpoint: str


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def env_offline() -> str | None:
    """The variable that asks for offline mode, if one does."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").upper() in TRUE:
            return f"{name}=1"
    return None


def hub_access(offline: bool = False) -> HubAccess:
    """The decision of the module docstring for a hub id."""
    url = endpoint()
    if offline:
        return HubAccess(False, "--offline", url)
    asked = env_offline()
    if asked:
        return HubAccess(False, asked, url)
    if os.environ.get("TAMSCOPE_ONLINE") == "1":
        return HubAccess(True, "TAMSCOPE_ONLINE=1", url)
    return HubAccess(True, "reachable", url) if reachable(url) else HubAccess(False, "unreachable", url)


@functools.cache
def reachable(url: str) -> bool:
    """Does anything answer HTTP at `url` within PROBE_TIMEOUT seconds (any status counts)?
    Proxies from the environment are used, as the download itself would use them."""
    import httpx

    try:
        httpx.head(url, timeout=PROBE_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError:  # connect refused or timed out, DNS failure, proxy error...
        return False
    return True


@contextlib.contextmanager
def cache_only() -> Iterator[None]:
    """huggingface_hub in offline mode for the duration (see the module docstring)."""
    import huggingface_hub.constants as constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
