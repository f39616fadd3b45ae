"""Idempotent writes of a keyed frame into a lakehouse table, through Spark.

Delta: ``MERGE INTO`` on the table's keys (Sail and delta-spark both run it), so re-ingesting the same
data rewrites the same rows and leaves the content unchanged; every merge is a new Delta version.
Parquet (classic Spark without Delta): no MERGE, so existing rows whose key is not being written are
anti-joined, unioned with the new rows, written to a sibling directory and swapped in by two renames;
a reader never sees a half-written table. The swap is for a local or POSIX filesystem; on object stores use
Delta.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from typing import TYPE_CHECKING

import pandas as pd

from strata.tables import Lakehouse, spec

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def dedupe_keys(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per key, the first seen (deterministic, so re-runs write the same rows).

    A MERGE source must not hold a key twice. Adapters already quarantined *conflicting* repeats; what is
    left are repeats that agree on what matters (exact duplicates, the same grade under two raw labels).
    """
    keys = list(spec(name).keys)
    nulls = frame[keys].isna().any(axis=1)
    if nulls.any():
        raise ValueError(f"{name}: {int(nulls.sum())} rows with a NULL key column ({', '.join(keys)})")
    return frame.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)


def upsert(spark: "SparkSession", lakehouse: Lakehouse, name: str, frame: pd.DataFrame) -> int:
    """Insert-or-update ``frame`` (unique keys) into table ``name``; returns the rows written."""
    df = lakehouse.to_spark(spark, name, frame)
    if lakehouse.exists(name) and len(frame) == 0:
        return 0
    upsert_df(spark, lakehouse, name, df)
    return len(frame)


def upsert_df(spark: "SparkSession", lakehouse: Lakehouse, name: str, df: "DataFrame") -> None:
    """``upsert`` for rows already in Spark (unique keys; extra columns dropped, types cast to the table's):
    the path for inputs that must never pass through the driver."""
    from pyspark.sql import functions as F

    from strata.tables import _spark_schema

    df = df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in _spark_schema(spec(name).schema).fields])
    if not lakehouse.exists(name):
        lakehouse.write(df, name, mode="overwrite")
    elif lakehouse.format == "delta":
        _merge_delta(spark, lakehouse, name, df)
    else:
        _swap_parquet(spark, lakehouse, name, df)


def append(spark: "SparkSession", lakehouse: Lakehouse, name: str, frame: pd.DataFrame) -> None:
    """Append rows (quarantine, ingest_log: one set per run); creates the table on first use."""
    if len(frame) == 0 and lakehouse.exists(name):
        return
    df = lakehouse.to_spark(spark, name, frame)
    lakehouse.write(df, name, mode="append" if lakehouse.exists(name) else "overwrite")


def _merge_delta(spark: "SparkSession", lakehouse: Lakehouse, name: str, df) -> None:
    view = f"strata_upsert_{name}_{uuid.uuid4().hex[:8]}"
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in spec(name).keys)
    df.createOrReplaceTempView(view)
    try:
        spark.sql(
            f"MERGE INTO delta.`{lakehouse.path(name)}` AS t USING {view} AS s ON {on} "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        ).collect()
    finally:
        spark.catalog.dropTempView(view)


def _swap_parquet(spark: "SparkSession", lakehouse: Lakehouse, name: str, df) -> None:
    keys = list(spec(name).keys)
    path = lakehouse.path(name)
    token = uuid.uuid4().hex[:8]
    staged = path.with_name(f".{name}.new-{token}")
    retired = path.with_name(f".{name}.old-{token}")
    kept = lakehouse.read(spark, name).join(df.select(*keys), on=keys, how="left_anti")
    merged = kept.select(*spec(name).schema.names).unionByName(df.select(*spec(name).schema.names))
    merged.write.format("parquet").mode("overwrite").save(str(staged))
    os.replace(path, retired)
    os.replace(staged, path)
    shutil.rmtree(retired, ignore_errors=True)
