"""The settings of live mode: the models (as for precompute) and the bounds a public server needs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

MB = 2**20
FACTOR = 28  # precompute.captioner_inputs.FACTOR: one merged vision token per 28 x 28 pixels


@dataclass(frozen=True)
class LiveSettings:
    dataset: Path  # the live dataset folder (created when missing)
    captioner: str = "Qwen/Qwen2-VL-2B-Instruct"
    device: str = "auto"
    dtype: str = "auto"
    tam_variant: str = "reference"
    text_llm: str = "lexicon"
    segmenter: str | None = None
    token: str | None = None  # required in `Authorization: Bearer <token>` when set
    max_new_tokens: int = 256  # per job at most (a job asks for fewer)
    max_pixels: int = 1280 * FACTOR * FACTOR  # what the model sees, per job at most (describe's default)
    min_pixels: int = 256 * FACTOR * FACTOR  # describe's default lower bound (clamped to a job's max_pixels)
    max_upload_bytes: int = 20 * MB
    max_upload_pixels: int = 25_000_000  # decoded size of an upload (a 40 MP photo is refused)
    queue: int = 4  # jobs waiting behind the running one; a full queue answers 429
    time_limit: float = 900.0  # seconds a job may run once its model is loaded
    cancel_grace: float = 10.0  # seconds a cancelled job has to stop before the worker is killed
    rate: int = 6  # jobs one client may create per rate_window seconds
    rate_window: float = 600.0
    threads: int | None = None  # torch threads in the worker

    @property
    def min_job_pixels(self) -> int:
        return 4 * FACTOR * FACTOR  # the smallest image a job may ask for: 4 vision tokens

    def worker_settings(self):
        from precompute.liveworker import WorkerSettings  # stdlib only at import: no torch here

        return WorkerSettings(dataset=str(self.dataset), captioner=self.captioner, device=self.device,
                              dtype=self.dtype, tam_variant=self.tam_variant, text_llm=self.text_llm,
                              segmenter=self.segmenter, threads=self.threads)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False
