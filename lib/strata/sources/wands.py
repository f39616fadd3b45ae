"""Wayfair WANDS release (``query.csv``, ``product.csv``, ``label.csv``; all tab separated).

Only ``query.csv`` is required: some copies ship without the (large) product and label files, and the
queries with their ``query_class`` are useful on their own. Labels are Exact / Partial / Irrelevant.
WANDS has no category ids, so a ``category hierarchy`` ("A / B / C") becomes taxonomy rows whose id is the
path itself, and each product points at its leaf. ``product_features`` ("k:v|k : v") become attributes,
together with the class and rating columns.
"""

from __future__ import annotations

import logging
from pathlib import Path

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, nonempty, take, title_problem
from strata.sources.files import find_file, find_optional, read_bytes, read_delimited
from strata.text import clean_text, normalize_query, split_of

log = logging.getLogger(__name__)

SOURCE = "wands"
GRADES = {"exact": 2, "partial": 1, "irrelevant": 0}
QUERY_COLUMNS = ("query_id", "query", "query_class")
PRODUCT_COLUMNS = ("product_id", "product_name")
LABEL_COLUMNS = ("id", "query_id", "product_id", "label")
EXTRA_ATTRIBUTES = ("product_class", "rating_count", "average_rating", "review_count")
HIERARCHY = "category hierarchy"


def parse_features(text: str | None) -> dict[str, str]:
    """``"a:b|c : d"`` -> {"a": "b", "c": "d"}; pairs without a key or value are skipped, first key wins."""
    out: dict[str, str] = {}
    for pair in (text or "").split("|"):
        key, sep, value = pair.partition(":")
        key, value = clean_text(key), clean_text(value)
        if sep and key and value and key not in out:
            out[key] = value
    return out


def _hierarchy(text: str | None) -> list[str]:
    return [clean_text(p) for p in (text or "").split("/") if clean_text(p)]


def _load_queries(file: Path, out: Collector, split: SplitConfig, limit: int | None) -> dict[str, str]:
    """queries rows (first ``limit``), and the id -> text lookup of *all* valid queries for the labels."""
    data, name = read_bytes(file)
    _, records = read_delimited(data, name, delimiter="\t", required=QUERY_COLUMNS)
    lookup: dict[str, str] = {}
    for n, rec in enumerate(records):
        f = rec.fields
        valid = f is not None and f["query_id"].strip() and normalize_query(f["query"])
        if valid:
            lookup.setdefault(f["query_id"].strip(), f["query"])
        if limit is not None and n >= limit:
            continue
        out.read("queries")
        if f is None:
            out.reject("queries", rec.location, rec.raw, rec.problem or "unreadable")
        elif not valid:
            out.reject("queries", rec.location, rec.raw, "missing query_id or query")
        else:
            qn = normalize_query(f["query"])
            out.accept(
                "queries",
                rec.location,
                {
                    "source": SOURCE,
                    "query_id": f["query_id"].strip(),
                    "query": f["query"],
                    "query_norm": qn,
                    "query_class": nonempty(f["query_class"]),
                    "split": split_of(qn, split.dev_fraction, split.salt),
                },
            )
    return lookup


def _load_products(file: Path, out: Collector, limit: int | None) -> None:
    data, name = read_bytes(file)
    header, records = read_delimited(data, name, delimiter="\t", required=PRODUCT_COLUMNS)
    for rec in take(records, limit):
        out.read("products")
        f = rec.fields
        if f is None or not f["product_id"].strip() or not clean_text(f["product_name"]):
            out.reject("products", rec.location, rec.raw, rec.problem or "missing product_id or product_name")
            continue
        too_long = title_problem(f["product_name"], "product_name")
        if too_long:
            out.reject("products", rec.location, rec.raw, too_long)
            continue
        path = _hierarchy(f.get(HIERARCHY))
        attributes = parse_features(f.get("product_features"))
        for key in EXTRA_ATTRIBUTES:
            value = clean_text(f.get(key))
            if value:
                attributes.setdefault(key, value)
        out.accept(
            "products",
            rec.location,
            {
                "product_id": f["product_id"].strip(),
                "source": SOURCE,
                "title": clean_text(f["product_name"]),
                "description": nonempty(f.get("product_description")),
                "brand": None,
                "category_id": " / ".join(path) if path else None,
                "attributes": attributes,
            },
        )
        for depth in range(1, len(path) + 1):
            out.read("taxonomy")
            out.accept(
                "taxonomy",
                f"{rec.location}/{depth}",
                {
                    "category_id": " / ".join(path[:depth]),
                    "source": SOURCE,
                    "parent_id": " / ".join(path[: depth - 1]) or None,
                    "name": path[depth - 1],
                    "path": path[:depth],
                    "depth": depth,
                },
            )


def _load_labels(
    file: Path, out: Collector, queries: dict[str, str], split: SplitConfig, limit: int | None
) -> None:
    data, name = read_bytes(file)
    _, records = read_delimited(data, name, delimiter="\t", required=LABEL_COLUMNS)
    for rec in out.readable("labels", records, limit):
        f = rec.fields
        qid, pid, label = f["query_id"].strip(), f["product_id"].strip(), f["label"].strip()
        grade = GRADES.get(label.lower())
        if not qid or not pid:
            why = "missing query_id or product_id"
        elif qid not in queries:
            why = f"query_id {qid!r} is not in query.csv"
        elif grade is None:
            why = f"label {label!r} is not Exact, Partial or Irrelevant"
        else:
            why = None
        if why:
            out.reject("labels", rec.location, rec.raw, why)
            continue
        query = queries[qid]
        qn = normalize_query(query)
        out.accept(
            "labels",
            rec.location,
            {
                "source": SOURCE,
                "query": query,
                "query_norm": qn,
                "product_id": pid,
                "grade": grade,
                "raw_label": label,
                "split": split_of(qn, split.dev_fraction, split.salt),
            },
        )


def load_wands(path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()) -> SourceData:
    """A WANDS folder (or its ``dataset/`` subfolder) -> queries [+ products, taxonomy, labels]."""
    path = Path(path)
    if path.is_dir() and not (path / "query.csv").is_file() and (path / "dataset" / "query.csv").is_file():
        path = path / "dataset"
    qfile = find_file(path, ["query.csv"], "WANDS query.csv")
    folder = qfile.parent
    out = Collector(SOURCE, ("queries", "products", "taxonomy", "labels"))
    lookup = _load_queries(qfile, out, split, limit)
    products = find_optional(folder, ("product.csv",))
    labels = find_optional(folder, ("label.csv",))
    missing = [n for n, p in (("product.csv", products), ("label.csv", labels)) if p is None]
    if missing:
        log.warning("%s: no %s; ingesting what is there (queries at least)", folder, " or ".join(missing))
    if products is not None:
        _load_products(products, out, limit)
    if labels is not None:
        _load_labels(labels, out, lookup, split, limit)
    out.resolve_conflicts("queries", compare=("query", "query_class"))
    out.resolve_conflicts("products", compare=("title", "description", "category_id", "attributes"))
    out.resolve_conflicts("taxonomy", compare=("parent_id", "name", "path"))
    out.resolve_conflicts("labels", compare=("grade",))
    return out.result()
