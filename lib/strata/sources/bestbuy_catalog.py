"""Best Buy catalog dump (2017 API): the category tree and ~18k products (products namespace ``bestbuy``).

``categories_BestBuy.csv`` gives each category with its ancestors (``categoryIdLevel1`` = parent, up to the
root ``cat00000`` "Best Buy"); paths are stored root-first *including* that root, the same shape the
2011 catalog in ``bestbuy-small`` uses, so both write identical taxonomy rows for shared ids.

``ext_product*_BestBuy.zip`` each hold a ``.tsv`` (and a ``.csv`` we ignore). The TSV is tab separated
with one header line, but fields holding newlines, tabs or quotes are CSV-quoted (``"..."`` with ``""``);
reading it with quoting off splits ~1,000 records across lines. Files are read in name order; a SKU seen
again with different content keeps the first file's record, the later one goes to quarantine.
Two of the three files are Windows-1252, one UTF-8 (decided per file from the bytes).

How a Best Buy product record becomes a products row (``product_row``) is shared with ``bestbuy-small``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strata.config_base import SplitConfig
from strata.sources.base import Collector, SourceData, SourceSchemaError, nonempty, strip_html, take, title_problem
from strata.sources.files import read_bytes, read_delimited, require_dir

SOURCE = "bestbuy"
ADAPTER = "bestbuy-catalog"
ROOT_ID = "cat00000"
LEVELS = 7
CATEGORY_COLUMNS = ("categoryID", "categoryName") + tuple(
    c for i in range(1, LEVELS + 1) for c in (f"categoryIdLevel{i}", f"categoryNameLevel{i}")
)
PRODUCT_COLUMNS = ("sku", "name")
# Short string fields worth keeping as attributes (features, filters, exact-match signals).
ATTRIBUTE_FIELDS = (
    "type", "format", "color", "class", "subclass", "department", "genre", "artistName", "albumTitle",
    "albumLabel", "studio", "mpaaRating", "esrbRating", "platform", "modelNumber", "upc", "regularPrice",
    "salePrice", "customerReviewAverage", "customerReviewCount", "categoryPathName",
)
_ID_SPLIT = re.compile(r"[\s,|>;]+")


def product_row(fields: Mapping[str, str | None], category_id: str | None) -> dict[str, Any]:
    """A Best Buy product record (XML children or TSV columns by name) -> products row."""
    description = (
        strip_html(fields.get("longDescription"))
        or strip_html(fields.get("shortDescription"))
        or strip_html(fields.get("plot"))
    )
    attributes = {}
    for key in ATTRIBUTE_FIELDS:
        value = strip_html(fields.get(key))
        if value:
            attributes[key] = value
    return {
        "product_id": (fields.get("sku") or "").strip(),
        "source": SOURCE,
        "title": strip_html(fields.get("name")),
        "description": description or None,
        "brand": nonempty(strip_html(fields.get("manufacturer"))),
        "category_id": category_id,
        "attributes": attributes,
    }


def product_problem(fields: Mapping[str, str | None]) -> str | None:
    if not any((v or "").strip() for v in fields.values()):
        return "empty record (every field blank)"
    missing = [c for c in ("sku", "name") if not (fields.get(c) or "").strip()]
    return f"missing {', '.join(missing)}" if missing else title_problem(fields.get("name"), "name")


def taxonomy_row(category_id: str, name: str, parent_id: str | None, path: list[str]) -> dict[str, Any]:
    return {
        "category_id": category_id,
        "source": SOURCE,
        "parent_id": parent_id,
        "name": name,
        "path": path,
        "depth": len(path),
    }


def _last_id(value: str | None) -> str | None:
    ids = [x for x in _ID_SPLIT.split(value or "") if x]
    return ids[-1] if ids else None


def _load_categories(file: Path, out: Collector, limit: int | None) -> None:
    data, name = read_bytes(file)
    _, records = read_delimited(data, name, delimiter=",", required=CATEGORY_COLUMNS)
    for rec in out.readable("taxonomy", records, limit):
        f = rec.fields
        cid, cname = f["categoryID"].strip(), f["categoryName"].strip()
        levels = [
            (f[f"categoryIdLevel{i}"].strip(), f[f"categoryNameLevel{i}"].strip()) for i in range(1, LEVELS + 1)
        ]
        depth = next((i for i, (a, n) in enumerate(levels) if not (a and n)), LEVELS)
        ancestors = levels[:depth]  # parent first, root last
        if not cid or not cname:
            out.reject("taxonomy", rec.location, rec.raw, "missing categoryID or categoryName")
        elif any(a or n for a, n in levels[depth:]):
            out.reject("taxonomy", rec.location, rec.raw, "ancestor levels have a gap or a half-empty level")
        elif ancestors and ancestors[-1][0] != ROOT_ID:
            out.reject("taxonomy", rec.location, rec.raw, f"ancestors do not end at the root {ROOT_ID}")
        elif not ancestors and cid != ROOT_ID:
            out.reject("taxonomy", rec.location, rec.raw, "no ancestors and not the root category")
        else:
            path = [n for _, n in reversed(ancestors)] + [cname]
            parent = ancestors[0][0] if ancestors else None
            out.accept("taxonomy", rec.location, taxonomy_row(cid, cname, parent, path))


def _load_products(zips: list[Path], out: Collector, limit: int | None) -> None:
    for z in zips:
        data, name = read_bytes(z, member_suffix=".tsv")
        _, records = read_delimited(data, name, delimiter="\t", required=PRODUCT_COLUMNS)
        for rec in take(records, limit):
            out.read("products")
            f = rec.fields
            problem = rec.problem if f is None else product_problem(f)
            if problem or f is None:
                out.reject("products", rec.location, rec.raw, problem or "unreadable")
                continue
            category = _last_id(f.get("categoryPathId")) or _last_id(f.get("categoryPath"))
            out.accept("products", rec.location, product_row(f, category))


def load_bestbuy_catalog(
    path: Path, *, limit: int | None = None, split: SplitConfig = SplitConfig()
) -> SourceData:
    """The ``bestbuy-catalog`` folder -> taxonomy + products. ``limit`` applies to each file."""
    folder = require_dir(Path(path), ADAPTER)
    categories = folder / "categories_BestBuy.csv"
    zips = sorted(folder.glob("ext_product*_BestBuy.zip"))
    if not categories.is_file() and not zips:
        raise SourceSchemaError(f"{folder}: neither categories_BestBuy.csv nor any ext_product*_BestBuy.zip found")
    out = Collector(ADAPTER, ("taxonomy", "products"))
    if categories.is_file():
        _load_categories(categories, out, limit)
    _load_products(zips, out, limit)
    out.resolve_conflicts("taxonomy", compare=("parent_id", "name", "path"))
    out.resolve_conflicts("products", compare=("title", "description", "brand", "category_id", "attributes"))
    return out.result()

