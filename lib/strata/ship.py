"""Model folders (a fine-tuned encoder, the distilled judge, Stage 1's model) for Ray actors and train workers on
nodes that need not share the driver's filesystem.

The driver puts the folder's files into Ray's object store once (``ship``); a worker calls ``here`` and gets a
local folder with the same content: the original path when that folder on its node has the same content (one
machine, or a filesystem every node mounts), else a copy written to its node's temp dir, once per content digest.
Without this, a cluster whose run directory lives on the head node only would fail when the first actor on a
GPU node opens ``RUN_DIR/model``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Folders larger than this are not shipped (the object store holds a copy while a run uses it): the path must
# then be readable on every node, as before.
MAX_SHIP_BYTES = 4 << 30
_DONE = ".strata-shipped"


@dataclass(frozen=True)
class Shipped:
    """A folder in Ray's object store: its path on the driver, a digest of its files, and the object."""

    path: str
    digest: str
    ref: Any  # ray.ObjectRef of {relative path: bytes}

    def __str__(self) -> str:  # what logs and error messages show
        return self.path


def folder_digest(path: str | Path) -> str:
    """sha256 over the folder's file names and contents (sorted): equal folders, equal digests."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != _DONE):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:32]


# Folders already in the object store, per Ray job and folder state: a stage that embeds in many calls (mining
# streams a catalog a step at a time) puts its model there once.
_SHIPPED: dict[tuple, Shipped] = {}


def ship(ray: Any, path: str | Path) -> "Shipped | str":
    """``path`` as a ``Shipped`` folder when it is a local folder no larger than ``MAX_SHIP_BYTES``; anything else
    (a model name such as ``baseline``, a URI, a huge folder) comes back as the string it was. The same folder,
    unchanged (names, sizes, modification times), is put once per Ray job."""
    root = Path(str(path))
    if not root.is_dir():
        return str(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != _DONE)
    stats = [f.stat() for f in files]
    size = sum(st.st_size for st in stats)
    if size > MAX_SHIP_BYTES:
        log.warning("%s: %.1f GB, not shipped through the object store: it must be readable on every node",
                    root, size / 1e9)
        return str(path)
    ctx = ray.get_runtime_context()
    # job ids restart with every new local cluster; the driver's node id does not repeat across clusters
    key = (ctx.get_node_id(), ctx.get_job_id(), str(root.resolve()),
           tuple((str(f.relative_to(root)), st.st_size, st.st_mtime_ns) for f, st in zip(files, stats)))
    if key not in _SHIPPED:
        payload = {str(f.relative_to(root)): f.read_bytes() for f in files}
        _SHIPPED[key] = Shipped(str(root), folder_digest(root), ray.put(payload))
    return _SHIPPED[key]


def here(folder: "Shipped | str") -> str:
    """A local path to ``folder``'s content on this node (see the module docstring). A plain string passes
    through."""
    if not isinstance(folder, Shipped):
        return folder
    if Path(folder.path).is_dir() and folder_digest(folder.path) == folder.digest:
        return folder.path
    target = Path(tempfile.gettempdir()) / "strata-shipped" / folder.digest
    if (target / _DONE).is_file():
        return str(target)
    import ray

    payload = ray.get(folder.ref)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in payload.items():
        out = tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    (tmp / _DONE).write_text(folder.path)
    try:
        os.replace(tmp, target)  # another worker on this node may have won the race: its copy is the same
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: copied to %s from the object store (not on this node)", folder.path, target)
    return str(target)
