"""Seed examples: the graded (query, product) pairs mining starts from, train split only.

Human labels keep their grade (0 included: a human-judged irrelevant pair is the best negative there is).
Engagement pairs come from ``query_product_engagement``: a product clicked ``engagement_exact_clicks`` times
or more for a query is exact (2), fewer clicks partial (1). Dev-split queries (same hash split as the
labels) never seed training, so the dev set stays unseen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.catalogs import catalog_sql
from strata.config_base import SplitConfig
from strata.tables import Lakehouse

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

SEED_COLUMNS = ("source", "catalog", "query", "query_norm", "product_id", "grade", "origin")


def seed_examples(spark: "SparkSession", lakehouse: Lakehouse, split: SplitConfig,
                  exact_clicks: int = 2) -> "DataFrame":
    """Human train labels + engagement pairs of train-split queries, as one Spark DataFrame (``SEED_COLUMNS``)."""
    from pyspark.sql import functions as F

    parts = []
    if lakehouse.exists("labels"):
        lakehouse.read(spark, "labels").createOrReplaceTempView("mine_labels")
        parts.append(spark.sql(f"""
            SELECT source, {catalog_sql('source')} AS catalog, query, query_norm, product_id, grade,
                   'human' AS origin
            FROM mine_labels WHERE split = 'train' AND query_norm IS NOT NULL AND query_norm <> ''"""))
    if lakehouse.exists("query_product_engagement"):
        eng = lakehouse.read(spark, "query_product_engagement")
        eng.createOrReplaceTempView("mine_engagement")
        # The split is the labels' sha1 hash, computed in Spark on the distinct queries (never collected).
        from strata.sparkfn import split_udf

        (eng.select("query_norm").distinct().where(F.col("query_norm").isNotNull() & (F.col("query_norm") != ""))
         .where(split_udf(split.dev_fraction, split.salt)("query_norm") == "train")
         .createOrReplaceTempView("mine_train_queries"))
        parts.append(spark.sql(f"""
            SELECT e.source, {catalog_sql('e.source')} AS catalog, e.query_norm AS query, e.query_norm,
                   e.product_id, CAST(CASE WHEN e.clicks >= {int(exact_clicks)} THEN 2 ELSE 1 END AS INT) AS grade,
                   'engagement' AS origin
            FROM mine_engagement e JOIN mine_train_queries t ON e.query_norm = t.query_norm
            WHERE e.clicks >= 1"""))
    if not parts:
        raise FileNotFoundError(f"{lakehouse.root}: no labels or query_product_engagement table to mine from "
                                "(run strata ingest and strata features)")
    df = parts[0]
    for p in parts[1:]:
        df = df.unionByName(p)
    df.createOrReplaceTempView("mine_seeds_all")
    # One row per (catalog, query, product): a human label wins over engagement for the same pair.
    return spark.sql("""
        SELECT source, catalog, query, query_norm, product_id, grade, origin FROM (
          SELECT *, row_number() OVER (PARTITION BY catalog, query_norm, product_id
                                       ORDER BY CASE origin WHEN 'human' THEN 0 ELSE 1 END, grade DESC,
                                                source, query) AS r
          FROM mine_seeds_all) WHERE r = 1""")
