"""Training groups built by Spark: ``training_examples`` x ``products`` -> one row per query (its products'
texts, ids and grades), with the spelling copies and synthetic queries added, written as parquet for Ray Data.

Why Spark and not pandas: at catalog scale ``training_examples`` holds ~100M rows; the join, the per-query
grouping and the augmentation run on the cluster and the driver only ever sees counts (and the few hundred or
thousand products picked for synthetic queries). Ray Train reads the parquet files straight into its workers.

Everything is keyed by hashes, so the same inputs give the same files (a resumed run trains on the same data):
- ``pid`` = ``xxhash64(catalog, product_id)``: one id per product across the whole table, so copies of a
  product under different queries are recognised in the loss;
- a query gets a misspelled copy when ``xxhash64(seed, catalog, query_norm)`` falls under ``spelling_rate``
  (the typo itself is drawn by an RNG seeded with the query);
- synthetic queries come from the ``synthetic_queries`` used products with the smallest
  ``xxhash64(seed, catalog, product_id)``;
- ``order`` = ``xxhash64(seed, catalog, query_norm, kind)``: readers sort each block by it (``ray_dataset``,
  ``read_groups``), so a batch mixes unrelated queries instead of alphabetical neighbours, which share words
  and so make false in-batch negatives. (Sorting before the write is not enough: Sail drops a sort that feeds
  a file sink, and a group-by leaves groups in key order.)

``scores`` holds each row's mining score (the query-product cosine of the mining model, 0 where it has
none) for hard-negative sampling (``strata.train.data``). ``teachers`` holds each row's soft grade for Stage 2's
judge distillation: the judge's expected grade p(partial) + 2 p(exact) where the mining judge scored the row
(from ``judgments``), else the row's grade (human, engagement and unjudged mined rows, synthetic queries);
``judged`` flags the rows whose teacher is the judge's (Stage 2 can keep them out of its label losses).

Columns: ``GROUP_COLUMNS`` + ``kind`` (real | misspelled | synthetic_query), ``best`` (top grade),
``n_grades`` (distinct grades) and ``order``: Stage 1 keeps ``best >= 1``, Stage 2 ``n_grades >= 2``.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strata.sparkfn import hash_bucket, product_text_udf, stable_hash_col
from strata.tables import Lakehouse
from strata.storage import StoragePath, location
from strata.train.augment import misspell, write_synthetic_queries

GROUP_COLUMNS = ("catalog", "query", "query_norm", "texts", "pids", "grades", "scores", "teachers", "judged",
                 "synthetic")
COLUMNS = (*GROUP_COLUMNS, "kind", "best", "n_grades", "order")
STAGE_FILTER = {1: ("best", 1), 2: ("n_grades", 2)}  # stage -> (column, minimum)
MANIFEST = "_strata_groups.json"
# bump when the columns (or their values for the same inputs) change: a manifest of another layout is rebuilt,
# not reused. 4: teachers reach judged rows whose judgments.source is a labels source (bestbuy-small -> bestbuy)
LAYOUT = 4
_BUCKETS = 1_000_000  # resolution of the hash-based spelling-copy draw


@dataclass(frozen=True)
class AugmentConfig:
    spelling_rate: float = 0.0  # share of real queries that get one misspelled copy
    synthetic_queries: int = 0  # used products that get a synthetic query (grade-2 positive)
    generator: str = "template"  # template | smollm2
    seed: int = 13


@dataclass(frozen=True)
class Groups:
    """Where the groups are and how many each stage gets (read from the written files, not estimated)."""

    path: str
    groups: int
    real: int
    misspelled_copies: int
    synthetic_queries: int
    stage1: int
    stage2: int
    source_version: int | None

    def files(self) -> list[str]:
        return sorted(str(p) for p in location(self.path).glob("*.parquet"))

    def count(self, stage: int) -> int:
        return self.stage1 if stage == 1 else self.stage2

    def augmentation(self) -> dict[str, int]:
        return {"misspelled_copies": self.misspelled_copies, "synthetic_queries": self.synthetic_queries}


def _misspelled(seed: int):
    """A Spark UDF: the query's misspelled copy (None when the typo left it unchanged)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def typo(query, catalog, query_norm):  # no hints: pyspark reads hints as a pandas-UDF signature
        q = misspell(query, random.Random(f"{seed}\x00{catalog}\x00{query_norm}"))
        return q if q != query else None

    return F.udf(typo, T.StringType())


def _group(rows: Any) -> Any:
    """Per (catalog, query_norm): arrays ordered by product_id; the query string of the first product's row."""
    from pyspark.sql import functions as F

    g = rows.groupBy("catalog", "query_norm").agg(
        F.array_sort(F.collect_list(F.struct("product_id", "query", "text", "pid", "grade", "score", "teacher",
                                            "judged")))
        .alias("r"),
        F.coalesce(F.bool_or("synthetic"), F.lit(False)).alias("synthetic"))
    return g.select(
        "catalog", F.col("r")[0]["query"].alias("query"), "query_norm",
        F.transform("r", lambda x: x["text"]).alias("texts"), F.transform("r", lambda x: x["pid"]).alias("pids"),
        F.transform("r", lambda x: x["grade"]).alias("grades"),
        F.transform("r", lambda x: F.coalesce(x["score"], F.lit(0.0))).alias("scores"),
        F.transform("r", lambda x: x["teacher"]).alias("teachers"),
        F.transform("r", lambda x: x["judged"]).alias("judged"), "synthetic")


def _with_teacher(spark: Any, lakehouse: Lakehouse, ex: Any) -> Any:
    """``ex`` plus ``teacher``: the mining judge's expected grade p1 + 2 p2 for the rows it scored (joined on
    catalog and the judgments key, so a row is matched only with the judge named in its ``judge_id``; the key
    is unique, so no row is duplicated), else the grade; and
    ``judged``: whether it is the judge's.

    ``judgments.source`` is the judged pair's labels/search-log source (``bestbuy-small``), not its catalog
    (``bestbuy``): it is mapped with ``catalog_col`` before the join."""
    from pyspark.sql import functions as F

    from strata.catalogs import catalog_col

    grade = F.col("grade").cast("double")
    if not lakehouse.exists("judgments"):
        return ex.withColumn("teacher", grade).withColumn("judged", F.lit(False)).drop("judge_id")
    j = (lakehouse.read(spark, "judgments").where(F.col("status").isin("ok", "truncated"))
         .where(F.col("p1").isNotNull() & F.col("p2").isNotNull())
         .select(catalog_col("source").alias("catalog"), "query_norm", "product_id", "judge_id",
                 (F.col("p1") + 2 * F.col("p2")).alias("expected")))
    return (ex.join(j, ["catalog", "query_norm", "product_id", "judge_id"], "left")
            .withColumn("teacher", F.coalesce(F.col("expected"), grade))
            .withColumn("judged", F.col("expected").isNotNull()).drop("expected", "judge_id"))


def _synthetic(spark: Any, used: Any, cfg: AugmentConfig) -> Any | None:
    """Synthetic-query groups for ``cfg.synthetic_queries`` used products (bounded: collected to the driver to
    run the generator)."""
    from pyspark.sql import functions as F

    if not cfg.synthetic_queries:
        return None
    picked = (used.withColumn("h", stable_hash_col("catalog", "product_id", seed=cfg.seed)).orderBy("h", "catalog",
              "product_id").limit(cfg.synthetic_queries).select("catalog", "title", "brand", "text", "pid").collect())
    rng = random.Random(cfg.seed)
    queries = write_synthetic_queries([r["title"] or "" for r in picked], [r["brand"] for r in picked], rng,
                                      cfg.generator)
    rows = [(r["catalog"], q, q, [r["text"]], [int(r["pid"])], [2], [0.0], [2.0], [False], True)
            for r, q in zip(picked, queries) if q]
    schema = ("catalog string, query string, query_norm string, texts array<string>, pids array<bigint>, "
              "grades array<int>, scores array<double>, teachers array<double>, judged array<boolean>, "
              "synthetic boolean")
    return spark.createDataFrame(rows, schema) if rows else None


def build_groups(spark: Any, lakehouse: Lakehouse, out: "str | StoragePath", catalogs: list[str] | None = None,
                 cfg: AugmentConfig = AugmentConfig()) -> Groups:
    """Write the training groups of ``catalogs`` (all when empty) under ``out`` and return their counts.

    Reuses ``out`` when its manifest says it was built from the same ``training_examples`` and ``products``
    versions with the same config (a resumed run must see the same data)."""
    from pyspark.sql import functions as F

    out = location(out)
    version = lakehouse.version("training_examples")
    key = {"source": str(lakehouse.path("training_examples")), "version": version,
           "products_version": lakehouse.version("products"), "judgments_version": lakehouse.version("judgments"),
           "catalogs": sorted(catalogs or []),
           "augment": asdict(cfg), "layout": LAYOUT}
    manifest = out / MANIFEST
    if version is not None and manifest.is_file():
        saved = json.loads(manifest.read_text())
        if saved.get("key") == key:
            return Groups(**saved["groups"])

    ex = lakehouse.read(spark, "training_examples").select("catalog", "query", "query_norm", "product_id",
                                                           F.col("grade").cast("int").alias("grade"),
                                                           F.col("score").cast("double").alias("score"), "synthetic",
                                                           "judge_id")
    if catalogs:
        ex = ex.where(F.col("catalog").isin(list(catalogs)))
    ex = _with_teacher(spark, lakehouse, ex)
    prods = (lakehouse.read(spark, "products").select(F.col("source").alias("catalog"), "product_id", "title",
                                                      "description", "brand"))
    # Only products some query uses: the text UDF never runs over the rest of the catalogue.
    used = (prods.join(ex.select("catalog", "product_id").distinct(), ["catalog", "product_id"], "left_semi")
            .withColumn("text", product_text_udf()("title", "description"))
            .withColumn("pid", stable_hash_col("catalog", "product_id")))
    rows = ex.join(used.select("catalog", "product_id", "text", "pid"), ["catalog", "product_id"], "inner")
    real = _group(rows)
    variants = [F.struct(F.col("query").alias("q"), F.col("query_norm").alias("qn"), F.lit("real").alias("k"))]
    if cfg.spelling_rate > 0:
        # The misspelled copy is a second variant of the same grouped row (one grouping pass, not two).
        draw = hash_bucket("catalog", "query_norm", buckets=_BUCKETS, seed=cfg.seed)
        typo = F.when(~F.col("synthetic") & (draw < int(round(cfg.spelling_rate * _BUCKETS))),
                      _misspelled(cfg.seed)("query", "catalog", "query_norm"))
        variants.append(F.struct(typo.alias("q"), F.lower(typo).alias("qn"), F.lit("misspelled").alias("k")))
    v = F.explode(F.filter(F.array(*variants), lambda x: x["q"].isNotNull())).alias("v")
    kind = F.col("v")["k"]
    parts = [real.select("catalog", "texts", "pids", "grades", "scores", "teachers", "judged", "synthetic", v)
             .select("catalog", F.col("v")["q"].alias("query"), F.col("v")["qn"].alias("query_norm"), "texts",
                     "pids", "grades", "scores", "teachers", "judged",
                     F.when(kind == "real", F.col("synthetic")).otherwise(True).alias("synthetic"),
                     kind.alias("kind"))]
    syn = _synthetic(spark, used, cfg)
    if syn is not None:
        parts.append(syn.withColumn("kind", F.lit("synthetic_query")))
    allg = parts[0]
    for p in parts[1:]:
        allg = allg.unionByName(p)
    allg = (allg.withColumn("best", F.array_max("grades"))
            .withColumn("n_grades", F.size(F.array_distinct("grades")))
            .withColumn("order", stable_hash_col("catalog", "query_norm", "kind", seed=cfg.seed)).select(*COLUMNS))
    allg.write.mode("overwrite").parquet(str(out))
    empty = ValueError(f"{lakehouse.root}: training_examples has no rows for {catalogs or 'any catalog'} "
                       "joined to a product (run strata mine run)")
    if not any(out.glob("*.parquet")):  # Sail writes no file at all for an empty result
        raise empty

    c = (spark.read.parquet(str(out)).agg(
        F.count(F.lit(1)).alias("groups"),
        F.sum((F.col("kind") == "real").cast("long")).alias("real"),
        F.sum((F.col("kind") == "misspelled").cast("long")).alias("misspelled"),
        F.sum((F.col("kind") == "synthetic_query").cast("long")).alias("synthetic"),
        F.sum((F.col("best") >= 1).cast("long")).alias("stage1"),
        F.sum((F.col("n_grades") >= 2).cast("long")).alias("stage2")).collect()[0])
    if not c["groups"]:
        raise empty
    groups = Groups(str(out), int(c["groups"]), int(c["real"] or 0), int(c["misspelled"] or 0),
                    int(c["synthetic"] or 0), int(c["stage1"] or 0), int(c["stage2"] or 0), version)
    manifest.write_text(json.dumps({"key": key, "groups": asdict(groups)}, indent=2))
    return groups


def read_groups(groups: Groups | str | Path, stage: int | None = None, columns: list[str] | None = None):
    """The groups as pandas in ``order`` (small runs, benchmarks, notebooks): ``stage`` keeps that stage's
    groups."""
    import pyarrow.dataset as ds

    path = groups.path if isinstance(groups, Groups) else str(groups)
    d = ds.dataset(path, format="parquet")
    flt = None
    if stage is not None:
        column, minimum = STAGE_FILTER[stage]
        flt = ds.field(column) >= minimum
    cols = None if columns is None else sorted(set(columns) | {"order"})
    return d.to_table(columns=cols, filter=flt).sort_by("order").to_pandas()


def _sort_block(block: Any) -> Any:
    return block.sort_by("order")


def ray_dataset(ray: Any, groups: Groups, stage: int, columns: tuple[str, ...] = ("query", "texts", "pids",
                                                                                      "grades", "scores"),
                seed: int = 13) -> Any:
    """The stage's groups as a Ray Dataset read from the parquet files (streamed to the train workers), blocks
    in a seeded random order and each block's rows in ``order``: shuffled without a global shuffle."""
    from ray.data.expressions import col

    cols = sorted(set(columns) | {"best", "n_grades", "order"})
    column, minimum = STAGE_FILTER[stage]
    return (ray.data.read_parquet(groups.files()).select_columns(cols).filter(expr=col(column) >= minimum)
            .randomize_block_order(seed=seed)
            .map_batches(_sort_block, batch_format="pyarrow", batch_size=None, num_cpus=0.5))
