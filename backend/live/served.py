"""The live dataset while the server runs: created when missing, held for writing, and grown.

The server holds the folder's writer lock (precompute.lock) for its lifetime: the worker
process writes under it, and no `tamscope precompute` or second server writes the same folder
meanwhile. Taking it repairs what a killed run left, and the painting list is rebuilt from the
records (a job stopped after describe leaves a valid painting). When the worker has committed a
painting, `commit` checks it as `tamscope validate` would (contract.validate.check_record) and
adds it to the served dataset: its record and files, its summary in the manifest, a new
dataset version (so `?v=` URLs of the old version are never answered with new content).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack
from pathlib import Path

import orjson

from backend.blobs import Blob
from backend.catalog import Painting, ServedDataset, dataset_id, load_dataset, load_painting, version_of
from contract.schema import DatasetManifest, PaintingSummary
from contract.store import PAINTINGS, RECORD, Dataset, summarise
from contract.validate import check_record

log = logging.getLogger("tamscope.serve")

DESCRIPTION = ("Questions asked live on this server (tamscope serve --live): each painting is an uploaded "
               "image or a served painting, with the prompt it was asked.")


class LiveDataset:
    def __init__(self, root: Path, catalog: dict[str, ServedDataset]):
        from precompute.lock import writer  # no torch: the lock and contract.commit's repair

        self.root, self.catalog = Path(root), catalog
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

    def prepare(self, pid: str) -> tuple[DatasetManifest, PaintingSummary, Painting] | None:
        """(blocking) The painting as the server will serve it, or None if it is not valid."""
        real = self.root.resolve()
        dataset = Dataset(real)
        record = dataset.record(pid)
        problems = check_record(real / PAINTINGS / pid, record, f"{PAINTINGS}/{pid}/{RECORD}")
        if problems:
            log.error("live: painting %s is not served: %s", pid, "; ".join(map(str, problems[:5])))
            return None
        summary = summarise(record, real)
        return dataset.manifest(), summary, load_painting(real, summary)

    def apply(self, pid: str, manifest: DatasetManifest, summary: PaintingSummary, painting: Painting) -> None:
        """(on the event loop) Serve it: one step between two requests."""
        served = self.served
        listed = {p.id: p for p in served.manifest.paintings}
        listed[pid] = summary
        # the folder's manifest for the models and settings the worker recorded; the list as served
        manifest = manifest.model_copy(update={"paintings": [listed[k] for k in sorted(listed)]})
        served.paintings[pid] = painting
        served.manifest = manifest
        served.manifest_blob = Blob.of(orjson.dumps(manifest.model_dump(mode="json", exclude_none=True)),
                                       "application/json")
        served.version = version_of(served)

    async def commit(self, pid: str) -> None:
        try:
            prepared = await asyncio.to_thread(self.prepare, pid)
        except (OSError, ValueError) as exc:  # a record that vanished or does not parse
            log.error("live: painting %s cannot be served: %s", pid, exc)
            return
        if prepared is not None:
            self.apply(pid, *prepared)

    def close(self) -> None:
        self.stack.close()
