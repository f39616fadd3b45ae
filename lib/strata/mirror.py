"""Run folders and refresh state folders on an object store, worked on through a local copy.

A run folder (``state.json``, manifests, reports, trained models) and a refresh's state folder (``state.json``,
the MLflow file-store registry, registered models, the product index) are written by code that speaks files:
sentence-transformers saves, MLflow's file store, ``os.replace``. When such a folder is an ``s3://`` (gs, abfs)
URI, the process works in a private local copy: ``Mirror.pull`` downloads the folder, the work runs on the copy,
and ``Mirror.push`` after every step uploads what changed and deletes what was removed, so a task on another node
(or the next night) pulls the same state. Every ``state.json`` goes up last: the remote folder never names a
file it does not hold yet. A killed process loses at most the step it was in, as with a local folder.

Subfolders that are object-store locations of their own (the lakehouse, Ray Train's checkpoints) are listed in
``exclude``: they are never downloaded, uploaded or deleted by the mirror.

``local_copy(uri)`` gives a local folder for a model at a URI (a registered champion, a start model): inside a
pulled mirror it is that mirror's copy, otherwise a download of its own for this process.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from strata.storage import ObjectPath, is_remote, location

log = logging.getLogger(__name__)

SCRATCH_ENV = "STRATA_SCRATCH"  # where local copies go (default: the system temp dir)
LAST = "state.json"  # uploaded after everything else in its folder tree
_CHUNK = 8 << 20

_MOUNTS: dict[str, Path] = {}  # remote URI -> the local copy of a pulled mirror in this process
_DOWNLOADS: dict[str, Path] = {}  # model URI -> its downloaded folder (this process)


def _scratch() -> str | None:
    return os.environ.get(SCRATCH_ENV) or None


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _files(remote: ObjectPath) -> dict[str, object]:
    """``{relative key: FileInfo}`` of every object under ``remote`` (folder markers left out)."""
    import pyarrow.fs as pafs

    base = remote.bucket_path.rstrip("/")
    infos = remote.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path[len(base) + 1:]: i for i in infos if i.type == pafs.FileType.File and not i.path.endswith("/")}


def _download(fs, key: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with fs.open_input_stream(key) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    os.replace(tmp, dest)


class Mirror:
    """A remote folder and this process's local copy of it (see the module docstring)."""

    def __init__(self, uri: str, exclude: tuple[str, ...] = ()):
        loc = location(uri)
        if not isinstance(loc, ObjectPath):
            raise ValueError(f"{uri!r} is a local path: a mirror is for object-store folders")
        self.remote = loc
        self.exclude = tuple(e.strip("/") + "/" for e in exclude if e.strip("/"))
        self.local = Path(tempfile.mkdtemp(prefix="strata-mirror-", dir=_scratch())).resolve()
        self._synced: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) at the last sync

    def __repr__(self) -> str:
        return f"Mirror({str(self.remote)!r} at {str(self.local)!r})"

    def _kept(self, rel: str) -> bool:
        return not any(rel.startswith(e) for e in self.exclude) and not rel.endswith(".part")

    def pull(self) -> Path:
        """Download the remote folder into the local copy; returns the local folder."""
        fs = self.remote.fs
        base = self.remote.bucket_path.rstrip("/")
        n = 0
        for rel in sorted(_files(self.remote)):
            if self._kept(rel):
                dest = self.local / rel
                _download(fs, f"{base}/{rel}", dest)
                self._synced[rel] = _stat(dest)
                n += 1
        _MOUNTS[str(self.remote)] = self.local
        log.info("mirror: pulled %d files of %s into %s", n, self.remote, self.local)
        return self.local

    def push(self) -> int:
        """Upload new and changed files (every ``state.json`` last), delete remote files removed locally;
        returns how many objects were written or deleted."""
        fs = self.remote.fs
        base = self.remote.bucket_path.rstrip("/")
        now = {p.relative_to(self.local).as_posix(): p for p in self.local.rglob("*") if p.is_file()}
        now = {rel: p for rel, p in now.items() if self._kept(rel)}
        changed = [rel for rel, p in now.items() if self._synced.get(rel) != _stat(p)]
        changed.sort(key=lambda rel: (Path(rel).name == LAST, -rel.count("/"), rel))  # the top one last
        for rel in changed:
            st = _stat(now[rel])
            with open(now[rel], "rb") as src, fs.open_output_stream(f"{base}/{rel}") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            self._synced[rel] = st
        gone = [rel for rel in self._synced if rel not in now]
        for rel in gone:
            try:
                fs.delete_file(f"{base}/{rel}")
            except FileNotFoundError:
                pass
            del self._synced[rel]
        if changed or gone:
            log.info("mirror: pushed %d files to %s, deleted %d", len(changed), self.remote, len(gone))
        return len(changed) + len(gone)

    def uri_for(self, path: str | Path) -> str:
        """The remote URI of a path inside the local copy (a path outside it is returned unchanged)."""
        return _as_uri(path, str(self.remote), self.local)

    def close(self) -> None:
        """Forget and delete the local copy (push first: what is not pushed is lost)."""
        if _MOUNTS.get(str(self.remote)) == self.local:
            del _MOUNTS[str(self.remote)]
        shutil.rmtree(self.local, ignore_errors=True)


def _as_uri(path: str | Path, root: str, local: Path) -> str:
    """``path`` named under ``root`` when it lies in ``local`` (the copy of ``root``), else unchanged."""
    p = Path(path).resolve()
    if p != local and local not in p.parents:
        return str(path)
    rel = p.relative_to(local).as_posix()
    return root if rel == "." else f"{root}/{rel}"


def remote_for(path: str | Path) -> str:
    """The URI a local path stands for when it lies in a pulled mirror's copy, else the path itself: a name
    that stays the same across processes and nodes (the copies' folders do not)."""
    for root, local in _MOUNTS.items():
        uri = _as_uri(path, root, local)
        if uri != str(path):
            return uri
    return str(path)


def local_copy(uri: str) -> Path:
    """A local folder holding the folder at ``uri``: the copy of a pulled mirror that contains it, else a
    download of its own (once per process). A local path comes back as it is."""
    if not is_remote(uri):
        return Path(uri)
    text = str(location(uri))
    for root, local in _MOUNTS.items():
        if text == root or text.startswith(root + "/"):
            return local / text[len(root):].lstrip("/")
    if text in _DOWNLOADS and _DOWNLOADS[text].is_dir():
        return _DOWNLOADS[text]
    remote = ObjectPath(text)
    files = _files(remote)
    if not files:
        raise FileNotFoundError(f"{text}: no objects under this URI")
    dest = Path(tempfile.mkdtemp(prefix=f"strata-copy-{hashlib.sha256(text.encode()).hexdigest()[:8]}-",
                                 dir=_scratch()))
    fs, base = remote.fs, remote.bucket_path.rstrip("/")
    for rel in sorted(files):
        _download(fs, f"{base}/{rel}", dest / rel)
    _DOWNLOADS[text] = dest
    atexit.register(shutil.rmtree, dest, True)
    log.info("copied %d files of %s into %s", len(files), text, dest)
    return dest
