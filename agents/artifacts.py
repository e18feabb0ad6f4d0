"""Datasets in the artifact store (a JetStream Object Store bucket), by content hash.

The verifier uploads a materialised dataset (parquet per split + card.json); the debugger and solver,
on any machine, fetch it into a local cache once. The event carries only the DataRef.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from bus import Bus
from domain.tasks import DataRef

PREFIX = "dataset"


def content_key(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:32]


async def upload_dataset(bus: Bus, directory: Path) -> DataRef:
    key = content_key(directory)
    store = await bus.artifacts()
    objects: dict[str, str] = {}
    total = 0
    for f in sorted(directory.iterdir()):
        if not f.is_file():
            continue
        name = f"{PREFIX}/{key}/{f.name}"
        data = f.read_bytes()
        total += len(data)
        try:
            await store.get_info(name)
        except Exception:
            await store.put(name, data)
        objects[f.stem if f.suffix == ".parquet" else f.name] = name
    return DataRef(key=key, splits=objects, bytes=total)


async def fetch_dataset(bus: Bus, ref: DataRef, cache_dir: Path) -> Path:
    """The dataset's local directory, downloading it into the cache if needed (atomic rename)."""
    target = cache_dir / ref.key
    if (target / ".complete").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    store = await bus.artifacts()
    tmp = Path(tempfile.mkdtemp(prefix=f".{ref.key}.", dir=cache_dir))
    try:
        for name in ref.splits.values():
            result = await store.get(name)
            (tmp / name.rsplit("/", 1)[-1]).write_bytes(result.data or b"")
        (tmp / ".complete").write_text("")
        try:
            os.rename(tmp, target)
        except OSError:  # another handler got there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

