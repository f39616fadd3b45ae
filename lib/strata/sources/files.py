"""Reading a dataset's files honestly: compressed files unpacked, the text encoding guessed from the bytes, and
delimited files walked record by record with physical line numbers, so a quarantined row always says where it
came from. A file-level problem (missing file or column, wrong delimiter, truncated archive) is a
``SourceSchemaError``; a bad record comes back with its ``problem`` for the adapter to quarantine.
"""

from __future__ import annotations

import csv
import gzip
import logging
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from strata.sources.base import SourceSchemaError, fix_c1

log = logging.getLogger(__name__)


def find_file(path: Path, candidates: Sequence[str], what: str) -> Path:
    """``path`` itself when it is a file, else the first of ``candidates`` inside the folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in candidates:
            if (path / name).is_file():
                return path / name
        raise SourceSchemaError(f"{path}: no {what} file (looked for {', '.join(candidates)})")
    raise SourceSchemaError(f"{path}: file not found")


def find_optional(folder: Path, candidates: Sequence[str]) -> Path | None:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    return None


def require_dir(path: Path, source: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise SourceSchemaError(f"{path}: not found")
    if not path.is_dir():
        raise SourceSchemaError(f"{path}: {source} expects the dataset folder, not a file")
    return path


def read_bytes(path: Path, member_suffix: str | None = None) -> tuple[bytes, str]:
    """A file's bytes, .gz and .zip unpacked, and the name locations use (``a.zip!b.tsv`` for members).

    Everything here is at most tens of MB, so reading whole files is fine; a damaged archive is a
    file-level error with the file named, never a silently short table.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceSchemaError(f"{path}: file not found")
    name = path.name
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read(), name
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                members = [i.filename for i in z.infolist() if not i.is_dir()]
                if member_suffix:
                    members = [m for m in members if m.endswith(member_suffix)]
                if len(members) != 1:
                    raise SourceSchemaError(
                        f"{path}: expected one {member_suffix or 'file'} member in the zip, found {members}"
                    )
                return z.read(members[0]), f"{name}!{members[0]}"
        return path.read_bytes(), name
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise SourceSchemaError(f"{path}: truncated or corrupt gzip file ({e})") from None
    except zipfile.BadZipFile as e:
        raise SourceSchemaError(f"{path}: truncated or corrupt zip file ({e})") from None


def decode_cp1252(data: bytes) -> str:
    """Windows-1252 that never fails: unassigned bytes fall back to Latin-1."""
    return fix_c1(data.decode("latin-1"))


@dataclass
class DecodedLines:
    lines: list[str]  # physical lines with their endings; line n is lines[n - 1]
    encoding: str
    bad: dict[int, str]  # line number -> why it could not be decoded


def decode_lines(data: bytes, name: str) -> DecodedLines:
    """Decode per physical line, deciding the encoding from the bytes.

    UTF-8 is tried line by line. Lines that fail are quarantined *if the file is otherwise UTF-8*
    (some non-ASCII lines decode, at least as many as fail); a file in which non-ASCII bytes are mostly
    not UTF-8 is a legacy single-byte file and is decoded as a whole as Windows-1252. Either way no row is
    lost without a trace.
    """
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM says nothing about the rows; drop it before deciding
        data = data[3:]
    raw = data.splitlines(keepends=True)
    lines: list[str] = []
    bad: dict[int, str] = {}
    utf8_non_ascii = 0
    for n, b in enumerate(raw, 1):
        try:
            lines.append(b.decode("utf-8"))
            if not b.isascii():
                utf8_non_ascii += 1
        except UnicodeDecodeError as e:
            bad[n] = f"invalid UTF-8: byte 0x{b[e.start]:02x} at column {e.start + 1}"
            lines.append(b.decode("utf-8", errors="replace"))
    if bad and utf8_non_ascii < len(bad):
        log.warning("%s: not UTF-8 (%d undecodable lines); decoding as Windows-1252", name, len(bad))
        return DecodedLines([decode_cp1252(b) for b in raw], "cp1252", {})
    if bad:
        log.warning("%s: UTF-8 with %d undecodable lines; they go to quarantine", name, len(bad))
    return DecodedLines(lines, "utf-8", bad)


@dataclass(frozen=True)
class Record:
    """One delimited record: where it is, its raw text, and its fields or why it has none."""

    location: str
    raw: str
    fields: dict[str, str] | None
    problem: str | None = None


def _span(name: str, start: int, end: int) -> str:
    return f"{name}:{start}" if start == end else f"{name}:{start}-{end}"


def read_delimited(
    data: bytes,
    name: str,
    *,
    delimiter: str,
    required: Sequence[str],
    quoting: int = csv.QUOTE_MINIMAL,
) -> tuple[list[str], Iterator[Record]]:
    """Header and a lazy stream of records of a delimited file.

    Missing required columns are a ``SourceSchemaError`` (with a hint when the header looks like it uses
    another delimiter or holds NUL bytes). Records with an undecodable line, a NUL byte, an unparseable
    quote, a field over the csv module's limit (128 KiB) or the wrong number of fields come back with
    ``problem`` set and ``fields`` None, for the adapter to quarantine. Blank lines are not records.
    """
    decoded = decode_lines(data, name)
    lines = decoded.lines
    reader = csv.reader(iter(lines), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise SourceSchemaError(f"{name}: empty file (no header line)") from None
    except csv.Error as e:
        raise SourceSchemaError(f"{name}: unreadable header ({e})") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        hint = ""
        if any("\x00" in h for h in header):
            hint = " (NUL bytes in the header: UTF-16/32 text or a binary file?)"
        elif len(header) == 1:
            others = [d for d in (",", "\t", ";", "|") if d != delimiter and d in header[0]]
            if others:
                hint = f" (the header is one column containing {others[0]!r}: wrong delimiter?)"
        shown = {"\t": "tab", ",": "comma"}.get(delimiter, repr(delimiter))
        raise SourceSchemaError(
            f"{name}: missing required column(s) {', '.join(missing)}; "
            f"header has {header} ({shown}-separated expected){hint}"
        )
    return header, _records(reader, lines, decoded.bad, header, name)


def _records(reader, lines: list[str], bad: dict[int, str], header: list[str], name: str) -> Iterator[Record]:
    done = reader.line_num
    while True:
        problem = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            row, problem = None, f"unparseable record ({e})"
        start, end = done + 1, reader.line_num
        done = end
        if row is not None and not row:
            continue  # blank line
        raw = "".join(lines[start - 1 : end]).rstrip("\r\n")
        loc = _span(name, start, end)
        enc = next((bad[n] for n in range(start, end + 1) if n in bad), None)
        nul = raw.find("\x00")
        if enc:
            yield Record(loc, raw, None, enc)
        elif nul >= 0:  # the csv module keeps NUL in fields; no consumer wants one in a title or query
            yield Record(loc, raw, None, f"NUL byte at character {nul + 1}")
        elif problem:
            yield Record(loc, raw, None, problem)
        elif len(row) != len(header):
            yield Record(loc, raw, None, f"expected {len(header)} fields, got {len(row)}")
        else:
            yield Record(loc, raw, dict(zip(header, row)))
