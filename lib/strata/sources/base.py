"""What every dataset adapter returns, and the shared machinery for reading files honestly.

An adapter turns one dataset (a file or a folder in its publisher's format) into frames shaped exactly like
the canonical tables, plus a quarantine of the records it could not accept, each with a reason. Nothing is
dropped silently: for every target table, records read == records accepted + records quarantined. The
helpers here make that accounting hard to get wrong (``Collector``) and clean the text fields; reading the
files (compressed files, the text encoding guessed from the bytes, delimited files walked record by record
with physical line numbers, so a quarantined row always says where it came from) is ``strata.sources.files``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from strata.tables import empty_frame, spec
from strata.text import clean_text

QUARANTINE_COLUMNS = ["source", "target_table", "location", "raw", "reason"]
MAX_RAW = 4000  # quarantined raw text is cut here: enough to see the problem, small enough to store
# A product title longer than this is not a title (a description or a whole page pasted in, a runaway quote):
# the record is quarantined, not truncated. Real titles are far shorter (longest: Home Depot 147, Best Buy 131).
MAX_TITLE = 2000
# Event timestamps outside [EVENT_TS_MIN, EVENT_TS_MAX) are sentinels or typos (1899-12-31, 2999-01-01), not
# events: quarantined. Kept in step with the Spark search-log job (strata.ingest.events).
EVENT_TS_MIN = datetime(1995, 1, 1)
EVENT_TS_MAX = datetime(2100, 1, 1)


class SourceSchemaError(ValueError):
    """A file-level problem (missing file or column, wrong delimiter, truncated archive): nothing to ingest."""


def title_problem(title: str | None, column: str = "title") -> str | None:
    """Why a product title is unusable because of its length (None if fine); see ``MAX_TITLE``."""
    n = len((title or "").strip())
    return f"{column} longer than {MAX_TITLE} characters ({n})" if n > MAX_TITLE else None


def timestamp_problem(column: str, text: str, ts: datetime | None) -> str | None:
    """Why an event timestamp is unusable (None if fine): unparseable, or outside the plausible range."""
    if ts is None:
        return f"{column} {text!r} is not a timestamp"
    if not EVENT_TS_MIN <= ts.replace(tzinfo=None) < EVENT_TS_MAX:
        return f"{column} {text!r} is out of range [{EVENT_TS_MIN:%Y-%m-%d}, {EVENT_TS_MAX:%Y-%m-%d})"
    return None


@dataclass
class SourceData:
    """One adapter run: canonical frames, quarantined records and the per-table accounting."""

    source: str
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    read: dict[str, int]
    # Records accepted per table. A record may yield several rows (a click-log row gives a search and a
    # click event) and exact duplicates are accepted, so this is not len(frame).
    accepted: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.accepted:  # built by hand (one record = one row): accepted is what was not quarantined
            q = self.quarantined()
            self.accepted = {t: n - q.get(t, 0) for t, n in self.read.items()}

    def quarantined(self) -> dict[str, int]:
        counts = Counter(self.quarantine["target_table"]) if len(self.quarantine) else Counter()
        return {t: int(counts.get(t, 0)) for t in [*self.read, *(t for t in counts if t not in self.read)]}

    def check(self) -> "SourceData":
        """Raise if a frame is not shaped like its table or the accounting does not add up."""
        for name, frame in self.tables.items():
            want = spec(name).schema.names
            if list(frame.columns) != want:
                raise ValueError(f"{self.source}: {name} frame has columns {list(frame.columns)}, want {want}")
        if list(self.quarantine.columns) != QUARANTINE_COLUMNS:
            raise ValueError(f"{self.source}: quarantine columns {list(self.quarantine.columns)}")
        quarantined = self.quarantined()
        for t in set(self.tables) | set(quarantined):
            if t not in self.read:
                raise ValueError(f"{self.source}: no read count for table {t}")
        for t, n in self.read.items():
            if n != self.accepted.get(t, 0) + quarantined[t]:
                raise ValueError(
                    f"{self.source}: {t}: read {n} != accepted {self.accepted.get(t, 0)} "
                    f"+ quarantined {quarantined[t]}"
                )
        return self


# -- accounting ------------------------------------------------------------------------------------------


def _comparable(value: Any) -> Any:
    """Lists/dicts made hashable so duplicate records can be compared field by field."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


class Collector:
    """Accepted rows and quarantined records of one adapter run, counted as they are seen.

    ``read`` is counted where a record is pulled from the file and ``accept``/``reject`` where it is
    judged, so an adapter that forgets a record fails ``SourceData.check`` instead of losing it.
    """

    def __init__(self, source: str, tables: Sequence[str]):
        self.source = source
        self._rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
        self._locations: dict[str, list[str]] = {t: [] for t in tables}
        self._read: Counter[str] = Counter({t: 0 for t in tables})
        self._accepted: Counter[str] = Counter({t: 0 for t in tables})
        self._quarantine: list[dict[str, str]] = []

    def read(self, *tables: str) -> None:
        for t in tables:
            self._read[t] += 1

    def readable(self, table: str, records: Iterable[Any], limit: int | None) -> Iterator[Any]:
        """The first ``limit`` records, each counted as read; unreadable ones go to quarantine with the
        parser's reason and are not yielded, so callers only see records whose ``fields`` parsed."""
        for rec in take(records, limit):
            self.read(table)
            if rec.fields is None:
                self.reject(table, rec.location, rec.raw, rec.problem or "unreadable")
                continue
            yield rec

    def accept(self, table: str, location: str, *rows: dict[str, Any]) -> None:
        """One record accepted; it may yield several rows."""
        self._accepted[table] += 1
        for row in rows:
            self._rows[table].append(row)
            self._locations[table].append(location)

    def reject(self, table: str, location: str, raw: str, reason: str) -> None:
        self._quarantine.append(
            {
                "source": self.source,
                "target_table": table,
                "location": location,
                "raw": raw if len(raw) <= MAX_RAW else raw[:MAX_RAW] + " [...]",
                "reason": reason,
            }
        )

    def resolve_conflicts(self, table: str, compare: Sequence[str]) -> None:
        """Same key seen again with different ``compare`` values: keep the first, quarantine the later.

        Only for tables where one record is one row. Exact repeats stay accepted (the ingest keeps one).
        """
        keys = spec(table).keys
        first: dict[tuple, tuple[tuple, str]] = {}
        kept_rows, kept_locs = [], []
        for row, loc in zip(self._rows[table], self._locations[table]):
            key = tuple(row[k] for k in keys)
            values = tuple(_comparable(row[c]) for c in compare)
            seen = first.get(key)
            if seen is None:
                first[key] = (values, loc)
            elif seen[0] != values:
                diff = [c for c, a, b in zip(compare, seen[0], values) if a != b]
                self._accepted[table] -= 1
                self.reject(
                    table,
                    loc,
                    json.dumps(row, default=str, ensure_ascii=False),
                    f"duplicate key {dict(zip(keys, key))} conflicts with {seen[1]} on {', '.join(diff)}; "
                    "first kept",
                )
                continue
            kept_rows.append(row)
            kept_locs.append(loc)
        self._rows[table], self._locations[table] = kept_rows, kept_locs

    def result(self) -> SourceData:
        """The run as SourceData; a table no record was read for (its file absent) is not produced."""
        produced = [t for t in self._rows if self._read[t] > 0]
        return SourceData(
            source=self.source,
            tables={t: make_frame(t, self._rows[t]) for t in produced},
            quarantine=pd.DataFrame(self._quarantine, columns=QUARANTINE_COLUMNS),
            read={t: self._read[t] for t in produced},
            accepted={t: self._accepted[t] for t in produced},
        ).check()


def make_frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with exactly the table's columns, in order."""
    if not rows:
        return empty_frame(table)
    return pd.DataFrame(rows, columns=spec(table).schema.names)


# -- text ------------------------------------------------------------------------------------------------

# Windows-1252 assigns printable characters to most of 0x80-0x9f, where Latin-1 has C1 controls.
_CP1252_C1 = {}
for _b in range(0x80, 0xA0):
    try:
        _CP1252_C1[_b] = bytes([_b]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are unassigned: keep Latin-1's control
        pass


def fix_c1(text: str) -> str:
    """C1 control characters (e.g. from ``&#151;``) read as the Windows-1252 characters they stand for."""
    return text.translate(_CP1252_C1)


_DROP_BLOCKS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def strip_html(text: str | None) -> str:
    """Markup removed (script/style bodies too), entities resolved, whitespace collapsed."""
    if not text:
        return ""
    text = _DROP_BLOCKS.sub(" ", text)
    text = _TAG.sub(" ", text)
    return clean_text(fix_c1(html.unescape(text)))


def nonempty(value: str | None) -> str | None:
    """``clean_text`` or None for empty: optional columns hold NULL, not ''."""
    v = clean_text(value)
    return v or None


def stable_id(*parts: object) -> str:
    """A content hash that is the same on every machine and run (event ids, session ids, query ids)."""
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()[:20]


def take(items: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """The first ``limit`` items (all when None): demo slices are always the head of a file."""
    for n, item in enumerate(items):
        if limit is not None and n >= limit:
            return
        yield item
