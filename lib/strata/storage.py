"""Where Strata's tables and staging files live: a local folder, or an object store (``s3://``, ``gs://``,
``abfs://``) that every node of a cluster reaches.

``location(x)`` gives a ``pathlib.Path`` for a local folder and an ``ObjectPath`` for a URI. ``ObjectPath`` has
the few ``Path`` methods stage code uses on table and staging locations (``/``, ``name``, ``parent``,
``exists``, ``is_dir``, ``glob``, ``mkdir``, ``rmdir``), over pyarrow's filesystems, so one code path serves
both. ``str()`` of either is what Spark, delta-rs and pyarrow take.

Credentials and endpoints come from the environment only (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible server, ``AWS_ALLOW_HTTP=true`` for a plain-http
one): Sail, delta-rs and pyarrow all read the same variables, and no secret ever sits in a config file.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator, Union

SCHEMES = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az")


def is_remote(where: "str | Path | ObjectPath") -> bool:
    """True for an object-store URI (``s3://...``); ``file://`` and plain paths are local."""
    text = str(where)
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def location(where: "str | Path | ObjectPath") -> "Path | ObjectPath":
    """A local ``Path`` (``~`` expanded, absolute) or an ``ObjectPath`` for a URI; any other scheme is refused
    here rather than failing later inside an engine."""
    if isinstance(where, ObjectPath):
        return where
    text = str(where)
    if is_remote(text):
        return ObjectPath(text)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        raise ValueError(f"{text!r}: unsupported storage scheme (local paths or {', '.join(SCHEMES)} URIs)")
    return Path(text).expanduser().resolve()


def rmtree(where: "Path | ObjectPath") -> None:
    """Remove a folder and everything under it; nothing there is not an error."""
    if isinstance(where, ObjectPath):
        where.rmtree()
    else:
        shutil.rmtree(where, ignore_errors=True)


def parquet_dataset(files: "list[str | Path | ObjectPath]"):
    """A pyarrow parquet dataset over explicit files, local or in one object store (pyarrow takes a list of
    URIs only together with their filesystem)."""
    import pyarrow.dataset as ds

    locs = [location(f) for f in files]
    remote = [p for p in locs if isinstance(p, ObjectPath)]
    if not remote:
        return ds.dataset([str(p) for p in locs], format="parquet")
    if len(remote) != len(locs) or len({(p.scheme, p.bucket) for p in remote}) > 1:
        raise ValueError("parquet_dataset: the files must all lie in one bucket, or all be local")
    return ds.dataset([p.bucket_path for p in remote], format="parquet", filesystem=remote[0].fs)


class ObjectPath:
    """A folder or file in an object store, by URI. Object stores have no folders, only key prefixes: ``mkdir``
    is a no-op, a "folder" exists when a key lies under it, and removing one deletes every key under it."""

    def __init__(self, uri: str):
        scheme, rest = uri.split("://", 1)
        self.scheme = scheme.lower()
        self._key = PurePosixPath("/" + rest.strip("/"))  # bucket/key..., rooted so .parent stops at the bucket
        if len(self._key.parts) < 2:
            raise ValueError(f"{uri!r}: an object-store location needs a bucket")

    # -- naming ------------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.scheme}://{str(self._key)[1:]}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, part: str) -> "ObjectPath":
        return ObjectPath(f"{self.scheme}://{str(self._key / str(part))[1:]}")

    @property
    def name(self) -> str:
        return self._key.name

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(f"{self.scheme}://{str(self._key.parent)[1:]}") if len(self._key.parts) > 2 else self

    @property
    def bucket(self) -> str:
        return self._key.parts[1]

    @property
    def bucket_path(self) -> str:
        """``bucket/key`` as pyarrow's filesystems name it."""
        return str(self._key)[1:]

    # -- the filesystem ----------------------------------------------------------------------------------
    @property
    def fs(self):
        """The pyarrow filesystem for this scheme (``AWS_ENDPOINT_URL`` and credentials from the environment)."""
        import pyarrow.fs as pafs

        fs, _ = pafs.FileSystem.from_uri(f"{self.scheme}://{self.bucket}")
        return fs

    def _info(self):
        return self.fs.get_file_info(self.bucket_path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def iterdir(self) -> Iterator["ObjectPath"]:
        """The direct children (files and "folders"), sorted by name; nothing when the folder is missing."""
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.bucket_path, allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            yield ObjectPath(f"{self.scheme}://{info.path}")

    def glob(self, pattern: str) -> Iterator["ObjectPath"]:
        """Direct children whose name matches ``pattern`` (one level, like ``Path.glob`` without ``**``)."""
        if "/" in pattern or "**" in pattern:
            raise ValueError(f"ObjectPath.glob takes a one-level pattern (got {pattern!r})")
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: keys create their prefixes."""

    def rmdir(self) -> None:
        """Like ``Path.rmdir``: refuses (OSError) while anything lies under the prefix; removes the empty
        folder's marker object (pyarrow leaves one when the last key under a folder goes)."""
        if any(True for _ in self.iterdir()):
            raise OSError(f"{self}: not empty")
        if self.is_dir():
            self.fs.delete_dir(self.bucket_path)

    def rmtree(self) -> None:
        import pyarrow.fs as pafs

        fs = self.fs
        if fs.get_file_info(self.bucket_path).type == pafs.FileType.Directory:
            fs.delete_dir(self.bucket_path)
        elif fs.get_file_info(self.bucket_path).type == pafs.FileType.File:
            fs.delete_file(self.bucket_path)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.bucket_path) as f:
            return f.read().decode("utf-8")

    def write_text(self, text: str) -> None:
        """One PUT: an object appears whole or not at all, so this is atomic as a local rename would be."""
        with self.fs.open_output_stream(self.bucket_path) as f:
            f.write(text.encode("utf-8"))


StoragePath = Union[Path, ObjectPath]
