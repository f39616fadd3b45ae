"""Amazon Shopping Queries (ESCI) judgments as exported by OpenSearch's search-relevance workbench.

``esci_us_judgments.json``: ``{"judgmentRatings": [{"query", "ratings": [{"docId", "rating"}]}]}`` with
ratings 100 / 10 / 1 / 0 for Exact / Substitute / Complement / Irrelevant. A substitute or a complement is
"partly right" for the shopper, so both map to grade 1. ``esci_us_queryset.json`` lists the query texts
(``querySetQueries: [{"queryText"}]``) without ids, so a query's id is a hash of its normalised text.
No product text ships with this export: ESCI contributes labels and queries, never products.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, SourceSchemaError, stable_id, take
from strata.sources.files import read_bytes
from strata.text import normalize_query, split_of

log = logging.getLogger(__name__)

SOURCE = "esci"
GRADES = {100.0: 2, 10.0: 1, 1.0: 1, 0.0: 0}
JUDGMENTS = "esci_us_judgments.json"
QUERYSET = "esci_us_queryset.json"


def query_id(query_norm: str) -> str:
    """ESCI query sets carry no ids: the normalised text's hash is stable across files and runs."""
    return "q" + stable_id(SOURCE, query_norm)[:16]


def _json(path: Path, key: str) -> tuple[list[Any], str]:
    data, name = read_bytes(path)
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise SourceSchemaError(f"{path}: not UTF-8 JSON ({e})") from None
    except json.JSONDecodeError as e:
        raise SourceSchemaError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SourceSchemaError(f"{path}: missing required list {key!r} at the top level")
    return items, name


def _grade(rating: Any) -> int | None:
    try:
        return GRADES.get(float(rating))
    except (TypeError, ValueError):
        return None


def _load_judgments(file: Path, out: Collector, split: SplitConfig, limit: int | None) -> None:
    entries, name = _json(file, "judgmentRatings")

    def ratings():
        for i, entry in enumerate(entries):
            query = entry.get("query") if isinstance(entry, dict) else None
            items = entry.get("ratings") if isinstance(entry, dict) else None
            if not isinstance(items, list):  # the entry itself is the record that cannot be read
                yield f"{name}:judgmentRatings[{i}]", query, None
                continue
            for j, r in enumerate(items):
                yield f"{name}:judgmentRatings[{i}].ratings[{j}]", query, r

    for loc, query, r in take(ratings(), limit):
        out.read("labels")
        raw = json.dumps({"query": query, "rating": r}, ensure_ascii=False)
        qn = normalize_query(query) if isinstance(query, str) else ""
        doc = r.get("docId") if isinstance(r, dict) else None
        rating = r.get("rating") if isinstance(r, dict) else None
        grade = _grade(rating)
        if r is None:
            why = "judgment entry has no ratings list"
        elif not qn:
            why = "missing query"
        elif not isinstance(doc, str) or not doc.strip():
            why = "missing docId"
        elif grade is None:
            why = f"rating {rating!r} is not one of 100, 10, 1, 0"
        else:
            why = None
        if why:
            out.reject("labels", loc, raw, why)
            continue
        out.accept(
            "labels",
            loc,
            {
                "source": SOURCE,
                "query": query,
                "query_norm": qn,
                "product_id": doc.strip(),
                "grade": grade,
                "raw_label": str(rating),
                "split": split_of(qn, split.dev_fraction, split.salt),
            },
        )


def _load_queryset(file: Path, out: Collector, split: SplitConfig, limit: int | None) -> None:
    items, name = _json(file, "querySetQueries")
    for i, item in take(enumerate(items), limit):
        out.read("queries")
        loc = f"{name}:querySetQueries[{i}]"
        text = item.get("queryText") if isinstance(item, dict) else None
        qn = normalize_query(text) if isinstance(text, str) else ""
        if not qn:
            out.reject("queries", loc, json.dumps(item, ensure_ascii=False), "missing queryText")
            continue
        out.accept(
            "queries",
            loc,
            {
                "source": SOURCE,
                "query_id": query_id(qn),
                "query": text,
                "query_norm": qn,
                "query_class": None,
                "split": split_of(qn, split.dev_fraction, split.salt),
            },
        )


def load_esci(path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()) -> SourceData:
    """The ESCI folder (or the judgments file) -> labels [+ queries]."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    judgments = path if path.is_file() else folder / JUDGMENTS
    if not judgments.is_file():
        raise SourceSchemaError(f"{judgments}: file not found")
    out = Collector(SOURCE, ("labels", "queries"))
    _load_judgments(judgments, out, split, limit)
    queryset = folder / QUERYSET
    if queryset.is_file():
        _load_queryset(queryset, out, split, limit)
    else:
        log.warning("%s: no %s; labels only", folder, QUERYSET)
    out.resolve_conflicts("labels", compare=("grade",))  # queries: same text, same id; nothing can conflict
    return out.result()
