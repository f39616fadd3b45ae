"""What is left to judge: ``Todo`` (a frame, or parquet files staged by Spark) and ``stage_candidates``.

Split from ``job`` so the judging loop stays readable; ``job`` re-exports both. The resume rule lives in two
places, ``job.missing_pairs`` (a frame) and ``stage_candidates`` (a table, in Spark): a pair counts as judged
when this judge has a verdict on it, i.e. a row whose status is not a failure of the judge (``RETRIED``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from strata.judge.protocol import RETRIED
from strata.storage import StoragePath, location, parquet_dataset
from strata.tables import Lakehouse

CANDIDATE_COLUMNS = ("source", "query", "query_norm", "product_id", "product_text", "category")


@dataclass
class Todo:
    """The candidates still to judge: a frame (small runs) or staged parquet files (``stage_candidates``)."""

    total: int  # candidates (one per pair) before the anti-join
    n: int  # still to judge
    frame: pd.DataFrame | None = None
    files: list[str] = field(default_factory=list)
    staging: StoragePath | None = None

    def ray_dataset(self, ray: Any, block_rows: int) -> Any:
        """Blocks whose rows are ordered shortest text first, so batches pad little (as in ray_embed)."""
        if self.frame is not None:
            todo = self.frame
            order = np.argsort(todo["product_text"].fillna("").str.len().to_numpy(), kind="stable")
            todo = todo.iloc[order].reset_index(drop=True)
            return ray.data.from_arrow([pa.Table.from_pandas(todo.iloc[s : s + block_rows], preserve_index=False)
                                        for s in range(0, self.n, block_rows)])
        # Sorted per file-sized block, then cut into blocks of ``block_rows``: the actors' output arrives (and
        # is MERGEd) a few batches at a time, as with the frame input, not one file at a time.
        return (ray.data.read_parquet(self.files).select_columns([*CANDIDATE_COLUMNS, "text_len"])
                .map_batches(_shortest_first, batch_format="pyarrow", batch_size=None, num_cpus=0.25)
                .repartition(target_num_rows_per_block=block_rows))

    def frames(self, rows: int) -> Iterator[pd.DataFrame]:
        """The candidates ``rows`` at a time (the in-process path)."""
        if self.frame is not None:
            for s in range(0, self.n, rows):
                yield self.frame.iloc[s : s + rows]
            return
        for b in parquet_dataset(self.files).to_batches(columns=list(CANDIDATE_COLUMNS), batch_size=rows):
            if b.num_rows:
                yield b.to_pandas()


def _shortest_first(block: pa.Table) -> pa.Table:
    return block.sort_by("text_len").drop_columns(["text_len"])


def stage_candidates(spark: Any, lakehouse: Lakehouse, path: "str | StoragePath", judge_id: str,
                     staging: "str | StoragePath", limit: int | None = None) -> Todo:
    """Spark: the candidates table at ``path`` (Delta or parquet) -> the pairs ``judge_id`` has not judged,
    as parquet under ``staging``. Same rules as ``read_candidates`` + ``missing_pairs``: product_text from
    title + description when absent, query_norm from query when absent, one row per (query_norm, product_id)
    (the smallest row, so reruns pick the same one), then this judge's judged pairs removed."""
    from pyspark.sql import functions as F

    from strata.sparkfn import normalize_query_udf, product_text_udf

    p = location(path)
    fmt = "delta" if (p / "_delta_log").is_dir() else "parquet"
    df = spark.read.format(fmt).load(str(p))
    names = set(df.columns)
    # The same checks, in the same order, as read_candidates.
    if not {"product_text", "title"} & names:
        raise ValueError("candidates need a product_text or title column")
    for col in ("query", "product_id"):
        if col not in names:
            raise ValueError(f"candidates need a {col!r} column (have {sorted(names)})")
    if "product_text" not in names:
        desc = F.col("description") if "description" in names else F.lit(None).cast("string")
        df = df.withColumn("product_text", product_text_udf()("title", desc))
    if "query_norm" not in names:
        df = df.withColumn("query_norm", normalize_query_udf()("query"))
    for col in ("source", "category"):
        if col not in names:
            df = df.withColumn(col, F.lit(None).cast("string"))
    df = df.select(F.col("source").cast("string"), F.col("query").cast("string"),
                   F.coalesce(F.col("query_norm").cast("string"), F.lit("")).alias("query_norm"),
                   F.col("product_id").cast("string"), F.col("product_text").cast("string"),
                   F.col("category").cast("string"))
    rest = [c for c in CANDIDATE_COLUMNS if c not in ("query_norm", "product_id")]
    df = (df.groupBy("query_norm", "product_id").agg(F.min(F.struct(*rest)).alias("r"))
          .select("query_norm", "product_id", *[F.col("r")[c].alias(c) for c in rest]))
    if limit:
        df = df.orderBy("query_norm", "product_id").limit(limit)
    staging = location(staging)
    staging.mkdir(parents=True, exist_ok=True)
    cands_dir = staging / "candidates"
    df.write.mode("overwrite").parquet(str(cands_dir))
    cands = spark.read.parquet(str(cands_dir))
    total = cands.count()
    todo = cands
    if lakehouse.exists("judgments"):
        done = (lakehouse.read(spark, "judgments")
                .where((F.col("judge_id") == judge_id)
                       & (F.col("status").isNull() | ~F.col("status").isin(*RETRIED)))
                .select("query_norm", "product_id"))
        todo = cands.join(done, ["query_norm", "product_id"], "left_anti")
    todo_dir = staging / "todo"
    (todo.withColumn("text_len", F.length(F.coalesce("product_text", F.lit(""))))
     .select(*CANDIDATE_COLUMNS, "text_len").write.mode("overwrite").parquet(str(todo_dir)))
    files = sorted(str(f) for f in todo_dir.glob("*.parquet"))
    n = spark.read.parquet(str(todo_dir)).count() if files else 0
    return Todo(total=int(total), n=int(n), files=files, staging=staging)
