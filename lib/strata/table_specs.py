"""Canonical tables: names, Arrow schemas, keys and what each table holds (``TableSpec``), and ``spec`` /
``empty_frame`` to look them up. Pure data: imports nothing from strata (``strata.tables`` is the I/O over them).

Each area adds its specs below its own marker (features, judge, mine, train, eval) and to ``TABLES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    doc: str


_STR = pa.string()

PRODUCTS = TableSpec(
    "products",
    pa.schema(
        [
            ("product_id", _STR),
            ("source", _STR),
            ("title", _STR),
            ("description", _STR),
            ("brand", _STR),
            ("category_id", _STR),
            ("attributes", pa.map_(_STR, _STR)),
        ]
    ),
    ("source", "product_id"),
    "One row per catalog product. Ids are strings, namespaced by source.",
)

TAXONOMY = TableSpec(
    "taxonomy",
    pa.schema(
        [
            ("category_id", _STR),
            ("source", _STR),
            ("parent_id", _STR),
            ("name", _STR),
            ("path", pa.list_(_STR)),
            ("depth", pa.int32()),
        ]
    ),
    ("source", "category_id"),
    "Category tree; path is root-first names, depth 1 = top level.",
)

SEARCH_EVENTS = TableSpec(
    "search_events",
    pa.schema(
        [
            ("event_id", _STR),
            ("source", _STR),
            ("ts", pa.timestamp("us")),
            ("session_id", _STR),
            ("user_id", _STR),
            ("query", _STR),
            ("query_norm", _STR),
            ("product_id", _STR),
            ("event_type", _STR),
            ("position", pa.int32()),
            ("event_date", pa.date32()),
        ]
    ),
    ("source", "event_id"),
    "Search log: one row per event (search, click, add_to_cart, purchase). event_id is a content hash.",
)

LABELS = TableSpec(
    "labels",
    pa.schema(
        [
            ("source", _STR),
            ("query", _STR),
            ("query_norm", _STR),
            ("product_id", _STR),
            ("grade", pa.int32()),
            ("raw_label", _STR),
            ("split", _STR),
        ]
    ),
    ("source", "query_norm", "product_id"),
    "Human graded labels: 2 exact, 1 partial, 0 irrelevant; raw_label keeps the source's own value.",
)

QUERIES = TableSpec(
    "queries",
    pa.schema(
        [
            ("source", _STR),
            ("query_id", _STR),
            ("query", _STR),
            ("query_norm", _STR),
            ("query_class", _STR),
            ("split", _STR),
        ]
    ),
    ("source", "query_id"),
    "Query sets (WANDS, ESCI, BEIR) with their intent class where the source gives one.",
)

QUERY_STATS = TableSpec(
    "query_stats",
    pa.schema(
        [
            ("source", _STR),
            ("query_norm", _STR),
            ("searches", pa.int64()),
            ("sessions", pa.int64()),
            ("clicks", pa.int64()),
            ("ctr", pa.float64()),
            ("zero_click_rate", pa.float64()),
            ("segment", _STR),
            ("top_categories", pa.list_(_STR)),
        ]
    ),
    ("source", "query_norm"),
    "Per normalised query, from the search log: volume, engagement, head/torso/tail segment.",
)

QUERY_PRODUCT_ENGAGEMENT = TableSpec(
    "query_product_engagement",
    pa.schema(
        [
            ("source", _STR),
            ("query_norm", _STR),
            ("product_id", _STR),
            ("impressions", pa.int64()),
            ("clicks", pa.int64()),
            ("add_to_carts", pa.int64()),
            ("purchases", pa.int64()),
        ]
    ),
    ("source", "query_norm", "product_id"),
    "Per (query, product) engagement from the log; null counts where the log does not record them.",
)

# -- area tables: each area adds its specs below its own marker (features, judge, mine, train, eval) --

# features (issue 3)
RUN_LOG = TableSpec(
    "run_log",
    pa.schema(
        [
            ("run_id", _STR),
            ("job", _STR),
            ("source", _STR),
            ("target_table", _STR),
            ("read", pa.int64()),
            ("accepted", pa.int64()),
            ("quarantined", pa.int64()),
            ("upserted", pa.int64()),
            ("seconds", pa.float64()),
            ("detail", _STR),
        ]
    ),
    ("run_id", "job", "source", "target_table"),
    "Counts per job and table (ingest, search-log increments, enrichment, features): read = accepted + quarantined.",
)

INGEST_STATE = TableSpec(
    "ingest_state",
    pa.schema(
        [
            ("source", _STR),
            ("target_table", _STR),
            ("watermark", pa.date32()),
            ("run_id", _STR),
            ("updated_at", pa.timestamp("us")),
        ]
    ),
    ("source", "target_table"),
    "Incremental state: the newest event_date partition processed per (source, table).",
)

PRODUCT_CATEGORIES = TableSpec(
    "product_categories",
    pa.schema(
        [
            ("source", _STR),
            ("product_id", _STR),
            ("taxonomy_source", _STR),
            ("category_id", _STR),
            ("candidate_id", _STR),
            ("confidence", pa.float64()),
            ("margin", pa.float64()),
            ("status", _STR),
            ("reason", _STR),
            ("model", _STR),
        ]
    ),
    ("source", "product_id"),
    "Embedding-assigned categories for catalogs without any; category_id NULL below the threshold.",
)

PRODUCT_FEATURES = TableSpec(
    "product_features",
    pa.schema(
        [
            ("source", _STR),
            ("product_id", _STR),
            ("taxonomy_source", _STR),
            ("category_id", _STR),
            ("category_path", pa.list_(_STR)),
            ("depth", pa.int32()),
            ("category_origin", _STR),
            ("category_confidence", pa.float64()),
            ("attributes", pa.map_(_STR, _STR)),
            ("attribute_sources", pa.map_(_STR, _STR)),
        ]
    ),
    ("source", "product_id"),
    "Per product: category path/depth (catalog or embedding-assigned) and attributes with their origin.",
)

TAXONOMY_NEIGHBOURS = TableSpec(
    "taxonomy_neighbours",
    pa.schema(
        [
            ("source", _STR),
            ("category_id", _STR),
            ("neighbour_id", _STR),
            ("neighbour_name", _STR),
            ("relation", _STR),
        ]
    ),
    ("source", "category_id", "neighbour_id"),
    "Per category: siblings (same parent) and cousins (same grandparent, other parent).",
)

QUERY_ATTRIBUTES = TableSpec(
    "query_attributes",
    pa.schema(
        [
            ("source", _STR),
            ("query_norm", _STR),
            ("attributes", pa.map_(_STR, _STR)),
            ("attribute_sources", pa.map_(_STR, _STR)),
        ]
    ),
    ("source", "query_norm"),
    "Attribute mentions in queries (brand, colour, material, size, dimensions, pack count).",
)

FEATURES_TABLES = (RUN_LOG, INGEST_STATE, PRODUCT_CATEGORIES, PRODUCT_FEATURES, TAXONOMY_NEIGHBOURS, QUERY_ATTRIBUTES)

# judge (issue 4)
JUDGMENTS = TableSpec(
    "judgments",
    pa.schema(
        [
            ("source", _STR),
            ("query_norm", _STR),
            ("query", _STR),
            ("product_id", _STR),
            ("judge_id", _STR),
            ("judge_version", _STR),
            ("grade", pa.int32()),
            ("p0", pa.float64()),
            ("p1", pa.float64()),
            ("p2", pa.float64()),
            ("status", _STR),
            ("error", _STR),
            ("run_id", _STR),
            ("judged_at", pa.timestamp("us")),
        ]
    ),
    ("query_norm", "product_id", "judge_id"),
    "One judge's grade for a (query, product): p0..p2 = P(irrelevant/partial/exact); status ok|truncated|error:*.",
)

JUDGE_AUDIT = TableSpec(
    "judge_audit",
    pa.schema(
        [
            ("source", _STR),
            ("query_norm", _STR),
            ("product_id", _STR),
            ("judge_id", _STR),
            ("grade", pa.int32()),
            ("p2", pa.float64()),
            ("impressions", pa.int64()),
            ("clicks", pa.int64()),
            ("add_to_carts", pa.int64()),
            ("purchases", pa.int64()),
            ("reason", _STR),
            ("run_id", _STR),
        ]
    ),
    ("query_norm", "product_id", "judge_id"),
    "Judgments that strongly disagree with engagement, with the reason: for re-review by a stronger judge.",
)

JUDGE_TABLES = (JUDGMENTS, JUDGE_AUDIT)

# mining (issue 5)
TRAINING_EXAMPLES = TableSpec(
    "training_examples",
    pa.schema(
        [
            ("catalog", _STR),
            ("query", _STR),
            ("query_norm", _STR),
            ("product_id", _STR),
            ("grade", pa.int32()),
            ("source", _STR),
            ("mined_from", _STR),
            ("rank", pa.int32()),
            ("score", pa.float64()),
            ("positive_score", pa.float64()),
            ("judge_grade", pa.int32()),
            ("judge_p2", pa.float64()),
            ("judge_id", _STR),
            ("model_id", _STR),
            ("synthetic", pa.bool_()),
        ]
    ),
    ("catalog", "query_norm", "product_id"),
    "Training tuples for both stages: one graded (query, product) per row with its provenance. source: human | "
    "engagement | judge (a mined candidate the judge graded 1-2) | taxonomy_sibling | attribute_flip | cousin | "
    "random | ann; mined_from = the mining route of a judge row; score = query-product cosine of model_id; "
    "positive_score = that of the query's weakest positive. "
    "Rewritten whole by each mining run (no run id column), so the same inputs give the same table.",
)

MINE_TABLES = (TRAINING_EXAMPLES,)

QUARANTINE = TableSpec(
    "quarantine",
    pa.schema(
        [
            ("source", _STR),
            ("target_table", _STR),
            ("location", _STR),
            ("raw", _STR),
            ("reason", _STR),
            ("run_id", _STR),
        ]
    ),
    ("source", "target_table", "location"),
    "Rows that failed validation, with the reason; nothing is dropped silently.",
)

INGEST_LOG = TableSpec(
    "ingest_log",
    pa.schema(
        [
            ("run_id", _STR),
            ("source", _STR),
            ("target_table", _STR),
            ("read", pa.int64()),
            ("accepted", pa.int64()),
            ("quarantined", pa.int64()),
            ("seconds", pa.float64()),
        ]
    ),
    ("run_id", "source", "target_table"),
    "Counts per ingest: read = accepted + quarantined, always.",
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        PRODUCTS, TAXONOMY, SEARCH_EVENTS, LABELS, QUERIES, QUERY_STATS, QUERY_PRODUCT_ENGAGEMENT,
        QUARANTINE, INGEST_LOG,
        *FEATURES_TABLES,  # features (issue 3)
        *JUDGE_TABLES,  # judge (issue 4)
        *MINE_TABLES,  # mining (issue 5)
    )
}


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None


def empty_frame(name: str) -> "pd.DataFrame":
    return spec(name).schema.empty_table().to_pandas()
