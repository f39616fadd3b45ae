"""Best Buy mobile search log, Aug-Oct 2011 (Kaggle "small"): search events, plus the matching catalog.

Each log row is a query followed by a click on ``sku``; it becomes two events: ``search`` at
``query_time`` and ``click`` at ``click_time`` on the product. ``queries_unlabeled.csv`` (the Kaggle test
split, SKU withheld) gives ``search`` events only. Ids are content hashes so re-ingesting is idempotent:
``event_id`` = hash(event type, user, time, query[, sku]); the log has no sessions, so ``session_id`` =
hash(user, query_time): one query and what followed it. Events carry ``source`` ``bestbuy-small`` (the
log); their ``product_id``s live in the products namespace ``bestbuy``.

The catalog XML (``small_product_data.xml[.zip]``, each product listed twice, identically) is streamed
with a pull parser, one product at a time; documents with a DTD or entity declarations are refused (also
when UTF-16/32 encoded), so no entity is ever expanded. Log times outside [1995, 2100) are quarantined.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, SourceSchemaError, stable_id, take, timestamp_problem
from strata.sources.bestbuy_catalog import product_problem, product_row, taxonomy_row
from strata.sources.files import find_optional, read_bytes, read_delimited, require_dir
from strata.text import normalize_query

ADAPTER = "bestbuy-small"
CLICK_COLUMNS = ("user", "sku", "query", "click_time", "query_time")
SEARCH_COLUMNS = ("user", "query", "query_time")
CATALOG_FILES = ("small_product_data.xml.zip", "small_product_data.xml")
_CHUNK = 1 << 16
_ELEMENT_START = re.compile(rb"<[A-Za-z_:]")


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _event(kind: str, user: str, ts: datetime, session: str, query: str, product: str | None) -> dict:
    return {
        "event_id": stable_id(kind, user, ts.isoformat(), query, product),
        "source": ADAPTER,
        "ts": ts,
        "session_id": session,
        "user_id": user,
        "query": query,
        "query_norm": normalize_query(query),
        "product_id": product,
        "event_type": kind,
        "position": None,
        "event_date": ts.date(),
    }


def _load_log(file: Path, out: Collector, *, clicks: bool, limit: int | None) -> None:
    data, name = read_bytes(file)
    _, records = read_delimited(data, name, delimiter=",", required=CLICK_COLUMNS if clicks else SEARCH_COLUMNS)
    for rec in out.readable("search_events", records, limit):
        f = rec.fields
        user, query, sku = f["user"].strip(), f["query"], f.get("sku", "").strip()
        missing = [c for c in (CLICK_COLUMNS if clicks else SEARCH_COLUMNS) if not f[c].strip()]
        query_ts = _timestamp(f["query_time"])
        click_ts = _timestamp(f["click_time"]) if clicks else None
        if missing:
            why = f"missing {', '.join(missing)}"
        elif not normalize_query(query):
            why = "query is blank"
        else:
            why = timestamp_problem("query_time", f["query_time"], query_ts) or (
                timestamp_problem("click_time", f["click_time"], click_ts) if clicks else None
            )
        if why:
            out.reject("search_events", rec.location, rec.raw, why)
            continue
        session = stable_id(user, f["query_time"].strip())
        events = [_event("search", user, query_ts, session, query, None)]
        if clicks:
            events.append(_event("click", user, click_ts, session, query, sku))
        out.accept("search_events", rec.location, *events)


def _chunks(file: Path) -> Iterator[bytes]:
    """The XML bytes in chunks, from a plain file or the single .xml member of a zip."""
    try:
        if file.name.endswith(".zip"):
            with zipfile.ZipFile(file) as z:
                members = [m for m in z.namelist() if m.endswith(".xml")]
                if len(members) != 1:
                    raise SourceSchemaError(f"{file}: expected one .xml member in the zip, found {members}")
                with z.open(members[0]) as f:
                    yield from iter(lambda: f.read(_CHUNK), b"")
        else:
            with file.open("rb") as f:
                yield from iter(lambda: f.read(_CHUNK), b"")
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise SourceSchemaError(f"{file}: truncated or corrupt zip file ({e})") from None


def _guarded(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Refuse DTDs: a DOCTYPE (the only place entities can be declared) must come before the root element.

    The markup is scanned with NUL bytes removed, so a UTF-16/32 document (ASCII markup interleaved with
    NULs) is checked too; NUL is not allowed in XML text, so this hides nothing in a UTF-8 document.
    """
    head = b""
    for chunk in chunks:
        if head is not None:
            head += chunk
            scan = head.replace(b"\x00", b"")
            m = _ELEMENT_START.search(scan)
            prolog = scan[: m.start()] if m else scan
            if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
                raise SourceSchemaError(
                    f"{name}: XML with a DTD / entity declarations is refused (entity expansion risk)"
                )
            if m is None:
                if len(head) > 4 * _CHUNK:
                    raise SourceSchemaError(f"{name}: no root element in the first {len(head)} bytes")
                continue
            chunk, head = head, None
        if b"<!ENTITY" in chunk.replace(b"\x00", b""):
            raise SourceSchemaError(f"{name}: XML with entity declarations is refused (entity expansion risk)")
        yield chunk
    if head is not None:
        yield head


def _products(file: Path, name: str) -> Iterator[ET.Element]:
    """Each direct child of the root, as soon as it is complete; detached afterwards to keep memory flat."""
    parser = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    depth = 0
    try:
        for chunk in _guarded(_chunks(file), name):
            parser.feed(chunk)
            for event, el in parser.read_events():
                if event == "start":
                    depth += 1
                    root = el if root is None else root
                    continue
                depth -= 1
                if depth == 1 and root is not None:
                    yield el
                    root.remove(el)
        parser.close()
    except ET.ParseError as e:
        raise SourceSchemaError(f"{name}: malformed XML ({e})") from None


def _fields(el: ET.Element) -> dict[str, str]:
    return {c.tag: (c.text or "").strip() for c in el if len(c) == 0}


def _load_catalog(file: Path, out: Collector, limit: int | None) -> None:
    name = file.name
    for n, el in enumerate(take(_products(file, name), limit), 1):
        loc = f"{name}:product[{n}]"
        out.read("products")
        fields = _fields(el)
        path = [
            ((c.findtext("id") or "").strip(), (c.findtext("name") or "").strip())
            for c in (el.find("categoryPath") if el.find("categoryPath") is not None else [])
        ]
        problem = product_problem(fields)
        if problem:
            out.reject("products", loc, ET.tostring(el, encoding="unicode"), problem)
            continue
        out.accept("products", loc, product_row(fields, path[-1][0] if path and path[-1][0] else None))
        for i, (cid, cname) in enumerate(path):
            out.read("taxonomy")
            cloc = f"{loc}/categoryPath[{i + 1}]"
            if not cid or not cname:
                out.reject("taxonomy", cloc, f"{cid}\t{cname}", "category without id or name")
                continue
            names = [nm for _, nm in path[: i + 1]]
            if not all(names):
                out.reject("taxonomy", cloc, f"{cid}\t{cname}", "an ancestor category has no name")
                continue
            out.accept("taxonomy", cloc, taxonomy_row(cid, cname, path[i - 1][0] if i else None, names))


def load_bestbuy_small(
    path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig(), logs: bool = True
) -> SourceData:
    """The ``bestbuy-small`` folder -> search_events, products, taxonomy. ``limit`` applies to each file.

    ``logs=False`` reads only the catalog: the ingest stage then reads the logs with Spark, incrementally
    (``strata.ingest.events``), producing the same event ids.
    """
    folder = require_dir(Path(path), ADAPTER)
    train = find_optional(folder, ("train.csv.gz", "train.csv"))
    if train is None:
        raise SourceSchemaError(f"{folder}: no click log (train.csv.gz or train.csv)")
    out = Collector(ADAPTER, ("search_events", "products", "taxonomy") if logs else ("products", "taxonomy"))
    if logs:
        _load_log(train, out, clicks=True, limit=limit)
        test = find_optional(folder, ("test.csv.gz", "test.csv"))
        if test is not None:
            _load_log(test, out, clicks=True, limit=limit)
        unlabeled = find_optional(folder, ("queries_unlabeled.csv.gz", "queries_unlabeled.csv"))
        if unlabeled is not None:
            _load_log(unlabeled, out, clicks=False, limit=limit)
    catalog = find_optional(folder, CATALOG_FILES)
    if catalog is not None:
        _load_catalog(catalog, out, limit)
    out.resolve_conflicts("products", compare=("title", "description", "brand", "category_id", "attributes"))
    out.resolve_conflicts("taxonomy", compare=("parent_id", "name", "path"))
    return out.result()

