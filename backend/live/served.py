"""The live dataset while the server runs: created when missing, held for writing, and grown.

The server holds the folder's writer lock (precompute.lock) for its lifetime: the worker
process writes under it, and no `tamscope precompute` or second server writes the same folder
meanwhile. Taking it repairs what a killed run left, and the painting list is rebuilt from the
records (a job stopped after describe leaves a valid painting). When the worker has committed a
painting, `commit` checks it as `tamscope validate` would (contract.validate.check_record),
lists it in the folder's manifest and reopens the dataset: its index (contract.index) is stale
then and is rebuilt, which gives a new dataset version (so `?v=` URLs of the old version are
never answered with new content). A live dataset grows by one painting a question (minutes each
on a CPU), so rebuilding its index each time costs little next to the question.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import ExitStack
from pathlib import Path

from backend.catalog import ServedDataset, dataset_id, load_dataset
from contract.store import PAINTINGS, RECORD, Dataset
from contract.validate import check_record

log = logging.getLogger("tamscope.serve")

DESCRIPTION = ("Questions asked live on this server (tamscope serve --live): each painting is an uploaded "
               "image or a served painting, with the prompt it was asked.")


class LiveDataset:
    def __init__(self, root: Path, catalog: dict[str, ServedDataset]):
        from precompute.lock import writer  # no torch: the lock and contract.commit's repair

        self.root, self.catalog = Path(root), catalog
        self.lock = threading.Lock()
        self.stack = ExitStack()
        self.stack.enter_context(writer(self.root))  # DatasetBusy (a UserError) when another process writes it
        try:
            dataset = Dataset(self.root)
            if dataset.has_manifest():
                dataset.refresh_manifest()
            else:
                dataset.refresh_manifest(name="live", description=DESCRIPTION)
            self.id = dataset_id(self.root, set(catalog))
            catalog[self.id] = load_dataset(self.root, self.id, skip_bad=True)
        except BaseException:
            self.stack.close()
            raise

    @property
    def served(self) -> ServedDataset:
        return self.catalog[self.id]

    def prepare(self, pid: str) -> ServedDataset | None:
        """(blocking) The dataset as the server will serve it with `pid` listed, or None if the
        painting is not valid."""
        real = self.root.resolve()
        dataset = Dataset(real)
        record = dataset.record(pid)
        problems = check_record(real / PAINTINGS / pid, record, f"{PAINTINGS}/{pid}/{RECORD}")
        if problems:
            log.error("live: painting %s is not served: %s", pid, "; ".join(map(str, problems[:5])))
            return None
        with self.lock:  # commits of one job's stages come one after another; never two reopenings at once
            if pid not in {p.id for p in dataset.manifest().paintings}:
                # after describe: the worker lists the painting itself only when its job ends
                # (precompute.lock.update_manifest), and it writes no manifest before then
                dataset.refresh_manifest()
            return load_dataset(self.root, self.id, skip_bad=True)

    async def commit(self, pid: str) -> None:
        try:
            reopened = await asyncio.to_thread(self.prepare, pid)
        except (OSError, ValueError) as exc:  # a record that vanished or does not parse
            log.error("live: painting %s cannot be served: %s", pid, exc)
            return
        if reopened is not None:
            self.catalog[self.id] = reopened  # one step between two requests (on the event loop)

    def close(self) -> None:
        self.stack.close()
