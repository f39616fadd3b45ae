"""Structured negatives (IKEA.com): products near a query's positives in the taxonomy or its attributes.

For each seed query with a positive (grade >= 1), from the positives' categories:
- ``taxonomy_sibling``: products in a sibling category (same parent);
- ``attribute_flip``: products in the positive's own category whose value differs for an attribute the query
  names (colour, material, size, brand...);
- ``cousin``: products in a cousin category (same grandparent, other parent);
- ``random``: products of the catalog outside every positive category of the query.
Sampling is a seeded hash order (Spark ``hash``), so the same inputs and seed give the same candidates on any
cluster, and no per-query Python loop runs on the driver. Known (seed) pairs are never candidates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.mine.config import MineConfig
from strata.sparkfn import hash_bucket_sql

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

CANDIDATE_COLUMNS = ("source", "catalog", "query", "query_norm", "product_id", "route")


def structured_candidates(spark: "SparkSession", cfg: MineConfig, n_products: int) -> "DataFrame":
    """Candidates from the views ``mine_seeds`` (seed examples), ``in_product_features``,
    ``in_taxonomy_neighbours``, ``in_query_attributes`` and ``in_products`` (``CANDIDATE_COLUMNS``)."""
    seed = int(cfg.seed)
    # Random route: products and queries meet in one of ``buckets`` hash buckets, so the join is
    # queries x (products / buckets) instead of queries x products.
    per_bucket = max(1, 20 * max(cfg.n_random, 1))
    buckets = max(1, n_products // per_bucket)

    def bucket_of(expr: str) -> str:  # pmod(hash('<seed>', 'bucket', expr), buckets): Murmur3, string seed
        return hash_bucket_sql("'bucket'", expr, buckets=buckets, seed=f"'{seed}'", fn="hash")

    return spark.sql(f"""
    WITH q AS (
      SELECT DISTINCT source, catalog, query, query_norm FROM mine_seeds WHERE grade >= 1
    ),
    qcat AS (
      SELECT DISTINCT s.source, s.catalog, s.query, s.query_norm, f.taxonomy_source, f.category_id
      FROM mine_seeds s JOIN in_product_features f ON f.source = s.catalog AND f.product_id = s.product_id
      WHERE s.grade >= 1 AND f.category_id IS NOT NULL
    ),
    pcat AS (
      SELECT source AS catalog, product_id, taxonomy_source, category_id, attributes
      FROM in_product_features WHERE category_id IS NOT NULL
    ),
    rel AS (
      SELECT c.source, c.catalog, c.query, c.query_norm, p.product_id,
             CASE n.relation WHEN 'sibling' THEN 'taxonomy_sibling' ELSE 'cousin' END AS route
      FROM qcat c
      JOIN in_taxonomy_neighbours n ON n.source = c.taxonomy_source AND n.category_id = c.category_id
      JOIN pcat p ON p.catalog = c.catalog AND p.taxonomy_source = n.source AND p.category_id = n.neighbour_id
    ),
    qattr AS (
      SELECT a.source, a.query_norm, kv.key AS k, kv.value AS v
      FROM in_query_attributes a LATERAL VIEW explode(a.attributes) kv AS key, value
    ),
    flip AS (
      SELECT c.source, c.catalog, c.query, c.query_norm, p.product_id, 'attribute_flip' AS route
      FROM qcat c
      JOIN qattr a ON a.source = c.source AND a.query_norm = c.query_norm
      JOIN pcat p ON p.catalog = c.catalog AND p.taxonomy_source = c.taxonomy_source
                  AND p.category_id = c.category_id
      WHERE element_at(p.attributes, a.k) IS NOT NULL AND lower(element_at(p.attributes, a.k)) <> lower(a.v)
    ),
    rnd AS (
      SELECT q.source, q.catalog, q.query, q.query_norm, p.product_id, 'random' AS route
      FROM q
      JOIN (SELECT source AS catalog, product_id,
                   {bucket_of('product_id')} AS b FROM in_products) p
        ON p.catalog = q.catalog AND p.b = {bucket_of('q.query_norm')}
      LEFT JOIN pcat pc ON pc.catalog = p.catalog AND pc.product_id = p.product_id
      LEFT JOIN (SELECT DISTINCT catalog, query_norm, category_id FROM qcat) own
        ON own.catalog = q.catalog AND own.query_norm = q.query_norm AND own.category_id = pc.category_id
      WHERE own.category_id IS NULL
    ),
    allc AS (
      SELECT * FROM rel UNION ALL SELECT * FROM flip UNION ALL SELECT * FROM rnd
    ),
    fresh AS (
      SELECT a.* FROM allc a
      LEFT ANTI JOIN mine_seeds s ON s.catalog = a.catalog AND s.query_norm = a.query_norm
                                 AND s.product_id = a.product_id
    ),
    dedup AS (  -- one route per (query, product): the harder route keeps it
      SELECT * FROM (
        SELECT *, row_number() OVER (
                    PARTITION BY catalog, query_norm, product_id
                    ORDER BY CASE route WHEN 'attribute_flip' THEN 0 WHEN 'taxonomy_sibling' THEN 1
                                        WHEN 'cousin' THEN 2 ELSE 3 END, source, query) AS r
        FROM fresh) WHERE r = 1
    ),
    ranked AS (
      SELECT *, row_number() OVER (PARTITION BY catalog, query_norm, route
                                   ORDER BY hash('{seed}', query_norm, product_id), product_id) AS k
      FROM dedup
    )
    SELECT source, catalog, query, query_norm, product_id, route FROM ranked
    WHERE (route = 'taxonomy_sibling' AND k <= {cfg.n_sibling})
       OR (route = 'attribute_flip' AND k <= {cfg.n_attribute})
       OR (route = 'cousin' AND k <= {cfg.n_cousin})
       OR (route = 'random' AND k <= {cfg.n_random})
    """)
