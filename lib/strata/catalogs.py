"""Which catalog (``products.source``) a labels or search-log source's product ids live in.

A dataset's labels and events are stored under the adapter's name (``labels.source`` = ``bestbuy-small``)
while its products are stored under the catalog namespace (``products.source`` = ``bestbuy``). Every join of
labels, events, judgments or seeds to products goes through ``catalog_of`` (Python), ``catalog_sql`` (Spark
SQL text) or ``catalog_col`` (a Spark column). A source not in ``CATALOG_OF`` is its own catalog.

Bottom layer: imports nothing from strata.
"""

from __future__ import annotations

from typing import Any

# labels / search_events source -> the products namespace its product ids live in (only where they differ)
CATALOG_OF: dict[str, str] = {"bestbuy-small": "bestbuy"}


def catalog_of(source: str) -> str:
    """The products namespace ``source``'s product ids live in (``source`` itself when not mapped)."""
    return CATALOG_OF.get(source, source)


def catalog_sql(col: str) -> str:
    """A Spark SQL expression: ``catalog_of`` of the column (or expression) ``col``."""
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in CATALOG_OF.items())
    return f"CASE {col} {whens} ELSE {col} END" if whens else col


def catalog_col(col: Any) -> Any:
    """A Spark column: ``catalog_of`` of ``col`` (a column or its name); NULL stays NULL."""
    from pyspark.sql import functions as F

    c = F.col(col) if isinstance(col, str) else col
    out = c
    for k, v in CATALOG_OF.items():
        out = F.when(c == F.lit(k), F.lit(v)).otherwise(out)
    return out


def catalog_pairs_sql() -> str:
    """A Spark SQL ``VALUES`` relation ``m(event_source, product_source)`` of the mapped sources (one dummy
    row when none are mapped, so the relation is never empty)."""
    rows = ", ".join(f"('{k}', '{v}')" for k, v in CATALOG_OF.items()) or "('', '')"
    return f"SELECT * FROM VALUES {rows} AS m(event_source, product_source)"
