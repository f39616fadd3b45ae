"""The judge's data: human-labelled (query, product text, grade) pairs and the catalog's texts, read from the
lakehouse without ever holding a whole table.

Labels name products by (labels source, product_id) while products are keyed by their catalog; the two
differ for a few sources (``strata.catalogs.catalog_of``). Both tables are streamed with push-down filters
(``Lakehouse.scan_batches`` / ``scan_frame``), so the memory a read needs follows the rows it keeps, not the
size of the catalog or of the labels table.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Iterator

from strata.catalogs import catalog_of
from strata.text import product_text

log = logging.getLogger(__name__)

_LABEL_COLUMNS = ["source", "query", "query_norm", "product_id", "grade", "split"]
_PRODUCT_COLUMNS = ["product_id", "source", "title", "description"]
PAIR_COLUMNS = ["source", "query", "query_norm", "product_id", "product_text", "grade", "split"]


def _key_filter(keys: Any) -> Any:
    """A pyarrow filter for products whose (source, product_id) is one of ``keys`` (a frame: catalog,
    product_id), as a push-down pre-filter (source in catalogs, product_id in ids) and an exact per-batch
    mask function."""
    import pyarrow as pa
    import pyarrow.compute as pc

    by_cat: dict[Any, pa.Array] = {}
    for cat, ids in keys.groupby("catalog", dropna=False, sort=False)["product_id"]:
        by_cat[None if cat is None or (isinstance(cat, float) and math.isnan(cat)) else cat] = pa.array(
            ids.unique(), type=pa.string(), from_pandas=True)
    all_ids = pa.array(keys["product_id"].unique(), type=pa.string(), from_pandas=True)
    cats = pa.array(list(by_cat), type=pa.string())
    pushdown = pc.field("source").isin(cats) & pc.field("product_id").isin(all_ids)

    def mask(batch: pa.RecordBatch) -> pa.Array:
        src, pid = batch.column("source"), batch.column("product_id")
        m = None
        for cat, ids in by_cat.items():
            same = pc.is_null(src) if cat is None else pc.equal(src, cat)
            hit = pc.and_(pc.fill_null(same, False), pc.is_in(pid, value_set=ids))
            m = hit if m is None else pc.or_(m, hit)
        return m

    return pushdown, mask


def query_draw(query_norm: Any) -> "Any":
    """A stable draw in [0, 1) per query (pandas' fixed-key hash): the same query gets the same draw in every
    run, so a sample keeps or drops a query with all its labels."""
    import numpy as np
    import pandas as pd

    values = np.asarray(pd.Series(query_norm, dtype=object).fillna(""), dtype=object)
    return pd.util.hash_array(values).astype(np.float64) / 2.0**64


def load_pairs(lakehouse: Any, source: str | None = None, sample: int | None = None) -> "Any":
    """labels joined with products (title + description) as a pandas frame: query, product_text, grade, split.

    Streams both tables: labels with only the columns kept (and ``source`` pushed down), then products
    with only the rows whose (source, product_id) a label references; the catalog is never held whole.
    ``sample``: keep about that many labels, whole queries drawn by a stable hash (``query_draw``), so the
    frame stays bounded however many labels the table holds (100M labels with text would be tens of GB).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from strata.tables import spec

    flt = (pc.field("source") == source) if source else None
    keep = None
    if sample is not None:
        if sample < 1:
            raise ValueError(f"sample must be >= 1 labels (got {sample})")
        total = sum(b.num_rows for b in lakehouse.scan_batches("labels", ["query_norm"], filter=flt))
        rate = sample / max(total, 1)
        if rate < 1:
            keep = lambda b: pa.array(query_draw(b.column("query_norm").to_pylist()) < rate)  # noqa: E731
        log.info("load_pairs: sampling %.4f of %d labels (about %d) by query", min(rate, 1.0), total, sample)
    labels = lakehouse.scan_frame("labels", _LABEL_COLUMNS, filter=flt, keep=keep)
    labels = labels.assign(catalog=labels["source"].map(catalog_of))
    kept: list[pa.RecordBatch] = []
    if len(labels):
        pushdown, mask = _key_filter(labels[["catalog", "product_id"]])
        for batch in lakehouse.scan_batches("products", _PRODUCT_COLUMNS, filter=pushdown):
            batch = batch.filter(mask(batch))
            if batch.num_rows:
                kept.append(batch)
    products = (pa.Table.from_batches(kept) if kept
                else spec("products").schema.empty_table().select(_PRODUCT_COLUMNS)).to_pandas()
    # object dtype even with no rows (as when the whole catalog was read)
    products = products.assign(product_text=pd.Series(_product_texts(products), index=products.index, dtype=object))
    df = labels.merge(products[["product_id", "source", "product_text"]],
                      left_on=["catalog", "product_id"], right_on=["source", "product_id"],
                      how="inner", suffixes=("", "_p"))
    return df[PAIR_COLUMNS].reset_index(drop=True)


def labels_candidates(lakehouse: Any) -> "Any":
    """Every human-labelled pair as a judging candidate (no grade, no split): re-judging them measures a judge
    against the people who labelled them."""
    return load_pairs(lakehouse)[["source", "query", "query_norm", "product_id", "product_text"]]


class CatalogTexts:
    """Every product's judge text (title + description), streamed from ``products`` each time it is iterated
    (the catalog is never held in memory: ``TokenStats.from_texts`` only counts tokens per text)."""

    def __init__(self, lakehouse: Any, source: str | None = None) -> None:
        self.lakehouse, self.source = lakehouse, source

    def __iter__(self) -> Iterator[str]:
        import pyarrow.compute as pc

        flt = (pc.field("source") == self.source) if self.source else None
        for batch in self.lakehouse.scan_batches("products", ["title", "description"], filter=flt):
            yield from _product_texts({"title": batch.column("title").to_pylist(),
                                       "description": batch.column("description").to_pylist()})


def catalog_texts(lakehouse: Any, source: str | None = None) -> Iterable[str]:
    """Every product's judge text (title + description), for the token statistics of the grade head: a lazy,
    re-iterable stream over ``products`` (same texts, same order as reading the table whole)."""
    return CatalogTexts(lakehouse, source)


def _product_texts(products: Any) -> list[str]:
    """``product_text`` of each row of columns ``title`` and ``description`` (a frame or a dict of lists)."""
    return [product_text(t, d) for t, d in zip(products["title"], products["description"])]
