"""The features job: canonical tables -> product_features, taxonomy_neighbours, query_stats,
query_product_engagement, query_attributes. Spark SQL only (no driver collects of data tables), so the same
code runs on the embedded Sail server (Delta) and on classic JVM Spark (parquet).

Every output is recomputed from its inputs and overwritten, deterministically: re-running on unchanged
inputs leaves identical content (and, on Delta, one more version per table).

Definitions (see docs/tables.md):

- product category: the catalog's own ``category_id`` (origin ``catalog``, confidence 1.0) or, for catalogs
  without categories, the ``product_categories`` assignment (origin ``embedding``, its cosine confidence;
  ``unassigned`` with the best candidate's confidence when it was below the threshold).
- taxonomy neighbours: siblings share the parent (top-level categories are siblings of each other);
  cousins share the grandparent but not the parent.
- query_stats: ``searches`` = search events, ``sessions`` = distinct session ids, ``clicks`` = click events,
  ``ctr`` = clicks / searches, ``zero_click_rate`` = share of the query's search sessions without a click,
  ``segment``: queries ranked by searches (ties by text) within the source; ``head`` while the volume
  *before* the query is < 50% of the source's searches, ``torso`` < 80%, ``tail`` after;
  ``top_categories`` = up to 3 category ids of clicked products, most clicks first.
- query_product_engagement: per (query, product) event counts; a count is NULL when the source logs no
  event of that type at all (the Best Buy log records only clicked results: impressions, add-to-carts and
  purchases are unknown, not zero).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.catalogs import catalog_pairs_sql
from strata.features.attributes import BIGRAM_ONLY, GENERIC_PREFIXES, map_sql, text_attribute_sql
from strata.tables import Lakehouse, spec

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

HEAD_SHARE, TORSO_SHARE = 0.5, 0.8
TOP_CATEGORIES = 3
BRAND_MIN_TITLES = 5
BRAND_BIGRAM_SHARE = 0.8


class MissingInputError(RuntimeError):
    """A table the job needs is not in the lakehouse (run ingest first)."""


@dataclass
class FeaturesResult:
    counts: list[dict]


def _view(lakehouse: Lakehouse, spark: "SparkSession", name: str, required: bool) -> bool:
    if not lakehouse.exists(name):
        if required:
            raise MissingInputError(
                f"features: required input table {name!r} not found at {lakehouse.path(name)} "
                "(run `strata ingest` first)"
            )
        empty = spark.createDataFrame([], schema=_spark_schema(name))
        empty.createOrReplaceTempView(f"in_{name}")
        return False
    df = lakehouse.read(spark, name)
    want = spec(name).schema.names
    missing = [c for c in want if c not in df.columns]
    if missing:
        raise MissingInputError(f"features: table {name!r} lacks column(s) {', '.join(missing)}; schema is wrong")
    df.select(*want).createOrReplaceTempView(f"in_{name}")
    return True


def _spark_schema(name: str):
    from strata.tables import _spark_schema as conv

    return conv(spec(name).schema)


def _brand_lexicon(spark: "SparkSession") -> None:
    """``brand_prefix``: per catalog, title prefixes that look like brands (see attributes module doc)."""
    generic = ", ".join(f"'{w}'" for w in GENERIC_PREFIXES)
    bigram_only = ", ".join(f"'{w}'" for w in BIGRAM_ONLY)
    spark.sql(
        f"""
        SELECT source, product_id, w[0] AS w1, CASE WHEN size(w) > 1 THEN concat(w[0], ' ', w[1]) END AS w2,
               title
        FROM (SELECT source, product_id, title, split(trim(title), ' ') AS w FROM in_products
              WHERE brand IS NULL AND title IS NOT NULL)
        """
    ).createOrReplaceTempView("title_words")
    spark.sql(
        f"""
        WITH f1 AS (SELECT source, w1, count(*) AS n1 FROM title_words GROUP BY source, w1),
             f2 AS (SELECT source, w1, w2, count(*) AS n2 FROM title_words WHERE w2 IS NOT NULL
                    GROUP BY source, w1, w2),
             best2 AS (SELECT source, w1, w2, n2 FROM (
                         SELECT *, row_number() OVER (PARTITION BY source, w1 ORDER BY n2 DESC, w2) AS r FROM f2)
                       WHERE r = 1)
        SELECT f1.source, f1.w1,
               CASE WHEN best2.n2 >= {BRAND_BIGRAM_SHARE} * f1.n1 AND best2.n2 >= {BRAND_MIN_TITLES}
                    AND regexp_extract(best2.w2, '^[^ ]+ [A-Za-z][A-Za-z&\\'-]*$', 0) <> ''
                    THEN best2.w2 ELSE f1.w1 END AS brand
        FROM f1 LEFT JOIN best2 ON f1.source = best2.source AND f1.w1 = best2.w1
        WHERE f1.n1 >= {BRAND_MIN_TITLES} AND regexp_extract(f1.w1, '^[A-Za-z][A-Za-z&\\'.-]+$', 0) <> ''
          AND lower(f1.w1) NOT IN ({generic}) AND lower(f1.w1) NOT IN ({bigram_only})
        UNION ALL
        SELECT source, w1, w2 AS brand FROM title_words
        WHERE lower(w1) IN ({bigram_only}) AND w2 IS NOT NULL
          AND regexp_extract(w2, '^[A-Za-z]+ [A-Za-z][A-Za-z&\\'-]*$', 0) <> ''
        GROUP BY source, w1, w2 HAVING count(*) >= {BRAND_MIN_TITLES}
        """
    ).createOrReplaceTempView("brand_prefix")


def product_features(spark: "SparkSession") -> "DataFrame":
    """Attributes are extracted from each product row alone first (``attrs``), each pattern once per row and
    the description's only where catalog and title gave nothing; only then, with the description dropped, is
    the product joined to its category and brand prefix. So the joins never carry the text, and the scan of
    ``in_products`` streams."""
    _brand_lexicon(spark)
    keys = ("colour", "material", "size", "dimensions", "pack_count")
    title = text_attribute_sql("p.title")
    desc = text_attribute_sql("description")
    catalog_key = {"colour": "color"}
    cat = {k: f"nullif(trim(p.attributes['{catalog_key[k]}']), '')" if k in catalog_key else "NULL" for k in keys}
    # c_<k>: the catalog's value, t_<k>: the title's; d_<k>: the description's, computed only when both are NULL
    first = ", ".join(f"{cat[k]} AS c_{k}, {title[k]} AS t_{k}" for k in keys)
    second = ", ".join(f"c_{k}, t_{k}, CASE WHEN c_{k} IS NULL AND t_{k} IS NULL THEN {desc[k]} END AS d_{k}"
                       for k in keys)
    values, sources = {}, {}
    # brand: catalog column, else a frequent title prefix
    values["brand"] = (
        "coalesce(p.brand, CASE WHEN substr(p.title, 1, length(bp.brand)) = bp.brand THEN bp.brand END)"
    )
    sources["brand"] = (
        "CASE WHEN p.brand IS NOT NULL THEN 'catalog' "
        "WHEN substr(p.title, 1, length(bp.brand)) = bp.brand THEN 'title_prefix' END"
    )
    for k in keys:
        values[k] = f"coalesce(p.c_{k}, p.t_{k}, p.d_{k})"
        sources[k] = (
            f"CASE WHEN p.c_{k} IS NOT NULL THEN 'catalog' WHEN p.t_{k} IS NOT NULL THEN 'title' "
            f"WHEN p.d_{k} IS NOT NULL THEN 'description' END"
        )
    return spark.sql(
        f"""
        WITH with_title AS (
          SELECT p.source, p.product_id, p.title, p.brand, p.category_id, p.description, {first}
          FROM in_products p
        ),
        attrs AS (
          SELECT source, product_id, title, brand, category_id, {second} FROM with_title
        ),
        base AS (
          SELECT p.source, p.product_id,
                 CASE WHEN p.category_id IS NOT NULL THEN p.source ELSE pc.taxonomy_source END AS taxonomy_source,
                 coalesce(p.category_id, pc.category_id) AS category_id,
                 CASE WHEN p.category_id IS NOT NULL THEN 'catalog'
                      WHEN pc.category_id IS NOT NULL THEN 'embedding'
                      WHEN pc.product_id IS NOT NULL THEN 'unassigned' END AS category_origin,
                 CASE WHEN p.category_id IS NOT NULL THEN 1.0D ELSE pc.confidence END AS category_confidence,
                 {map_sql(values)} AS attributes,
                 {map_sql(sources)} AS attribute_sources
          FROM attrs p
          LEFT JOIN in_product_categories pc ON p.source = pc.source AND p.product_id = pc.product_id
          LEFT JOIN (SELECT b.source, t.product_id, max(b.brand) AS brand FROM brand_prefix b
                     JOIN title_words t ON b.source = t.source AND b.w1 = t.w1
                      AND (b.brand = t.w1 OR b.brand = t.w2)
                     GROUP BY b.source, t.product_id) bp
            ON p.source = bp.source AND p.product_id = bp.product_id AND p.brand IS NULL
        )
        SELECT b.source, b.product_id, b.taxonomy_source, b.category_id, t.path AS category_path,
               t.depth AS depth, b.category_origin, b.category_confidence, b.attributes, b.attribute_sources
        FROM base b
        LEFT JOIN in_taxonomy t ON b.taxonomy_source = t.source AND b.category_id = t.category_id
        """
    )


def taxonomy_neighbours(spark: "SparkSession") -> "DataFrame":
    return spark.sql(
        """
        WITH t AS (SELECT source, category_id, coalesce(parent_id, '') AS parent, name FROM in_taxonomy),
        siblings AS (
          SELECT a.source, a.category_id, b.category_id AS neighbour_id, b.name AS neighbour_name,
                 'sibling' AS relation
          FROM t a JOIN t b ON a.source = b.source AND a.parent = b.parent AND a.category_id <> b.category_id
        ),
        cousins AS (
          SELECT a.source, a.category_id, c.category_id AS neighbour_id, c.name AS neighbour_name,
                 'cousin' AS relation
          FROM t a
          JOIN t pa ON a.source = pa.source AND a.parent = pa.category_id
          JOIN t pb ON pa.source = pb.source AND pa.parent = pb.parent AND pa.category_id <> pb.category_id
          JOIN t c ON pb.source = c.source AND c.parent = pb.category_id
        )
        SELECT * FROM siblings UNION ALL SELECT * FROM cousins
        """
    )


def query_stats(spark: "SparkSession") -> "DataFrame":
    spark.sql(catalog_pairs_sql()).createOrReplaceTempView("event_product_source")  # events source -> catalog
    return spark.sql(
        f"""
        WITH q AS (
          SELECT source, query_norm, count_if(event_type = 'search') AS searches,
                 count(DISTINCT session_id) AS sessions, count_if(event_type = 'click') AS clicks
          FROM in_search_events GROUP BY source, query_norm
        ),
        s AS (
          SELECT source, query_norm, session_id, max(event_type = 'search') AS has_search,
                 max(event_type = 'click') AS has_click
          FROM in_search_events GROUP BY source, query_norm, session_id
        ),
        z AS (
          SELECT source, query_norm,
                 CASE WHEN count_if(has_search) > 0
                      THEN count_if(has_search AND NOT has_click) / count_if(has_search) END AS zero_click_rate
          FROM s GROUP BY source, query_norm
        ),
        seg AS (
          SELECT source, query_norm,
                 (sum(searches) OVER (PARTITION BY source ORDER BY searches DESC, query_norm
                                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - searches)
                 / sum(searches) OVER (PARTITION BY source) AS share_before
          FROM q
        ),
        cats AS (
          SELECT e.source, e.query_norm, pf.category_id, count(*) AS n
          FROM in_search_events e
          LEFT JOIN event_product_source m ON e.source = m.event_source
          JOIN in_products pf ON pf.source = coalesce(m.product_source, e.source) AND pf.product_id = e.product_id
          WHERE e.event_type = 'click' AND pf.category_id IS NOT NULL
          GROUP BY e.source, e.query_norm, pf.category_id
        ),
        top AS (
          SELECT source, query_norm,
                 transform(array_sort(collect_list(struct(-n AS neg, category_id AS c))), x -> x.c) AS cs
          FROM cats GROUP BY source, query_norm
        )
        SELECT q.source, q.query_norm, q.searches, q.sessions, q.clicks,
               CASE WHEN q.searches > 0 THEN q.clicks / q.searches END AS ctr,
               z.zero_click_rate,
               CASE WHEN seg.share_before < {HEAD_SHARE} THEN 'head'
                    WHEN seg.share_before < {TORSO_SHARE} THEN 'torso' ELSE 'tail' END AS segment,
               coalesce(slice(top.cs, 1, {TOP_CATEGORIES}), array()) AS top_categories
        FROM q
        JOIN z ON q.source = z.source AND q.query_norm = z.query_norm
        JOIN seg ON q.source = seg.source AND q.query_norm = seg.query_norm
        LEFT JOIN top ON q.source = top.source AND q.query_norm = top.query_norm
        """
    )


def query_product_engagement(spark: "SparkSession") -> "DataFrame":
    return spark.sql(
        """
        WITH present AS (
          SELECT source, max(event_type = 'impression') AS has_imp, max(event_type = 'add_to_cart') AS has_atc,
                 max(event_type = 'purchase') AS has_buy
          FROM in_search_events GROUP BY source
        ),
        c AS (
          SELECT source, query_norm, product_id, count_if(event_type = 'impression') AS imp,
                 count_if(event_type = 'click') AS clicks, count_if(event_type = 'add_to_cart') AS atc,
                 count_if(event_type = 'purchase') AS buy
          FROM in_search_events WHERE product_id IS NOT NULL GROUP BY source, query_norm, product_id
        )
        SELECT c.source, c.query_norm, c.product_id,
               CASE WHEN p.has_imp THEN c.imp END AS impressions, c.clicks,
               CASE WHEN p.has_atc THEN c.atc END AS add_to_carts,
               CASE WHEN p.has_buy THEN c.buy END AS purchases
        FROM c JOIN present p ON c.source = p.source
        """
    )


def query_attributes(spark: "SparkSession") -> "DataFrame":
    """Attribute mentions of every distinct query in the log and the labels (brands: the same catalog's)."""
    spark.sql(catalog_pairs_sql()).createOrReplaceTempView("event_product_source")  # events source -> catalog
    attrs = text_attribute_sql("q.query_norm")
    spark.sql(
        """
        SELECT DISTINCT source AS product_source, lower(attributes['brand']) AS brand FROM out_product_features
        WHERE attributes['brand'] IS NOT NULL AND length(attributes['brand']) >= 3
        """
    ).createOrReplaceTempView("brand_lexicon")
    spark.sql(
        """
        SELECT DISTINCT source, query_norm FROM (
          SELECT source, query_norm FROM in_search_events UNION ALL SELECT source, query_norm FROM in_labels)
        WHERE query_norm IS NOT NULL AND query_norm <> ''
        """
    ).createOrReplaceTempView("all_queries")
    spark.sql(
        """
        WITH toks AS (SELECT source, query_norm, posexplode(split(query_norm, ' ')) AS (pos, tok) FROM all_queries),
        grams AS (
          SELECT source, query_norm, tok AS g FROM toks
          UNION ALL
          SELECT a.source, a.query_norm, concat(a.tok, ' ', b.tok) AS g
          FROM toks a JOIN toks b ON a.source = b.source AND a.query_norm = b.query_norm AND b.pos = a.pos + 1
        )
        SELECT source, query_norm, brand FROM (
          SELECT g.source, g.query_norm, b.brand,
                 row_number() OVER (PARTITION BY g.source, g.query_norm ORDER BY length(b.brand) DESC, b.brand) AS r
          FROM grams g LEFT JOIN event_product_source m ON g.source = m.event_source
          JOIN brand_lexicon b ON g.g = b.brand AND b.product_source = coalesce(m.product_source, g.source))
        WHERE r = 1
        """
    ).createOrReplaceTempView("query_brand")
    values = {"brand": "qb.brand", **{k: attrs[k] for k in ("colour", "material", "size", "dimensions", "pack_count")}}
    sources = {k: f"CASE WHEN {v} IS NOT NULL THEN 'query_text' END" for k, v in values.items()}
    sources["brand"] = "CASE WHEN qb.brand IS NOT NULL THEN 'brand_lexicon' END"
    return spark.sql(
        f"""
        SELECT q.source, q.query_norm, {map_sql(values)} AS attributes, {map_sql(sources)} AS attribute_sources
        FROM all_queries q LEFT JOIN query_brand qb ON q.source = qb.source AND q.query_norm = qb.query_norm
        """
    )


def _write(spark: "SparkSession", lakehouse: Lakehouse, name: str, df: "DataFrame") -> int:
    """Overwrite a derived table; returns its row count (read back from the written table)."""
    lakehouse.write(df, name, mode="overwrite")
    return lakehouse.read(spark, name).count()


def run_features(spark: "SparkSession", lakehouse: Lakehouse, run_id: str) -> FeaturesResult:
    """Build every feature table from the lakehouse's canonical tables; logs counts to run_log."""
    from strata.ingest.runlog import log_counts

    _view(lakehouse, spark, "products", required=True)
    _view(lakehouse, spark, "taxonomy", required=True)
    has_events = _view(lakehouse, spark, "search_events", required=False)
    _view(lakehouse, spark, "labels", required=False)
    _view(lakehouse, spark, "product_categories", required=False)
    if not has_events:
        log.warning("features: no search_events table; query_stats and engagement will be empty")

    counts = []
    plan = [
        ("product_features", product_features),
        ("taxonomy_neighbours", taxonomy_neighbours),
        ("query_stats", query_stats),
        ("query_product_engagement", query_product_engagement),
        ("query_attributes", query_attributes),
    ]
    for name, build in plan:
        t0 = time.perf_counter()
        n = _write(spark, lakehouse, name, build(spark))
        if name == "product_features":
            lakehouse.read(spark, name).createOrReplaceTempView("out_product_features")
        secs = round(time.perf_counter() - t0, 3)
        counts.append({"source": "lakehouse", "target_table": name, "read": n, "accepted": n, "quarantined": 0,
                       "upserted": n, "seconds": secs})
        log.info("features: %s: %d rows (%.1fs)", name, n, secs)
    log_counts(spark, lakehouse, run_id, "features", counts)
    return FeaturesResult(counts=counts)
