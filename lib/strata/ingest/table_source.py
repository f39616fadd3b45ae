"""Catalog and label tables of the retailer's own (parquet, Delta, CSV, JSON lines) -> ``products`` /
``labels``, read, validated, deduplicated and MERGEd entirely in Spark.

The dataset adapters (``strata.sources``) parse public dumps in odd formats row by row in the driver; that
is fine at tens of MB and wrong at 10M products. A retailer's catalog already lives in a table, so this job
maps its columns (``TableSourceConfig.columns``) and lets Spark do the rest where the rows are. The driver
only ever collects one row of counts.

The rules are the adapters' rules, so the two paths give the same tables for the same rows:
- text is cleaned with the same ``clean_text`` (title, description, brand), queries normalised with
  ``normalize_query`` and split with ``split_of`` (Spark UDFs of the library's own functions);
- a row with a NUL byte, a blank key or title, a title longer than ``MAX_TITLE``, attributes that are not a
  JSON object, a blank query or an unusable label goes to ``quarantine`` with the reason;
- a key seen again with different values: the first row in scan order is kept and the later ones are
  quarantined, naming the columns that differ; exact repeats are accepted and written once.
read = accepted + quarantined for every run (``log_counts`` checks it).

The row-checked rows are staged once as parquet under ``<lakehouse>/_staging/ingest-<run_id>-*``, so the
counts, the MERGE and the quarantine all see the same snapshot (scan order is fixed once), then removed.
Duplicate keys are found on a narrow projection, so no step sorts the wide text columns.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from strata.ingest.config import COLUMNS, GRADES, check_mapping  # noqa: F401  (the mapping rules live with the config)
from strata.sources.base import MAX_RAW, MAX_TITLE, SourceSchemaError
from strata.storage import rmtree
from strata.tables import Lakehouse, spec

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from strata.config_base import SplitConfig
    from strata.ingest.config import TableSourceConfig

log = logging.getLogger(__name__)

# A repeated key conflicts when these differ (as in the adapters: two raw labels of one grade agree).
CONFLICT_COLUMNS = {"products": ["title", "description", "brand", "category_id", "attributes"],
                    "labels": ["grade"]}


def read_source_table(spark: "SparkSession", path: Path, cfg: "TableSourceConfig") -> "DataFrame":
    """The user's table as a Spark DataFrame; a missing path or unmapped column is a ``SourceSchemaError``."""
    path = Path(path)
    if not path.exists():
        raise SourceSchemaError(f"{path}: not found")
    fmt = cfg.format
    if fmt == "auto":
        fmt = "delta" if (path / "_delta_log").is_dir() else "parquet"
    reader = spark.read.format(fmt)
    if fmt == "csv":
        reader = reader.option("header", "true").option("sep", cfg.delimiter)
    try:
        df = reader.load(str(path))
        names = df.columns
    except Exception as e:  # noqa: BLE001  (Spark raises its own types; the user needs the path and format)
        raise SourceSchemaError(f"{path}: cannot read as {fmt} ({str(e).splitlines()[0][:300]})") from None
    absent = sorted({src for src in cfg.columns.values() if src not in names})
    if absent:
        raise SourceSchemaError(f"{path}: column(s) {absent} not in the table (it has {names})")
    return df


def _blank(c: "Column") -> "Column":
    from pyspark.sql import functions as F

    return F.coalesce(F.trim(c.cast("string")), F.lit("")) == ""


def _checked(df: "DataFrame", cfg: "TableSourceConfig", split: "SplitConfig", location: str,
             limit: int | None) -> "DataFrame":
    """Canonical columns + ``_row`` (scan order), ``why`` from the row checks (NULL = passed), ``location``
    and ``_src`` (the source columns as strings, only where a row check failed: it becomes ``raw``)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from strata.sparkfn import normalize_query_udf, split_udf
    from strata.text import clean_text

    src = cfg.columns
    df = df.withColumn("_row", F.monotonically_increasing_id())
    if limit is not None:  # the first N rows in scan order, the same on a re-run
        df = df.orderBy("_row").limit(limit)
    raw = F.struct(*[F.col(c).cast("string").alias(c) for c in dict.fromkeys(src.values())])
    texts = [F.coalesce(F.col(c).cast("string"), F.lit("")) for c in dict.fromkeys(src.values())]
    nul = F.array_contains(F.array(*[F.instr(t, "\u0000") > 0 for t in texts]), True)
    clean = F.udf(lambda s: None if s is None else (clean_text(s) or None), T.StringType())

    def col(name: str) -> "Column":
        return F.col(src[name]) if name in src else F.lit(None)

    if cfg.target == "products":
        attrs = col("attributes")
        attr_type = dict(df.dtypes).get(src.get("attributes", ""), "")
        if attr_type.startswith("map"):
            parsed, bad_attrs = attrs.cast("map<string,string>"), F.lit(False)
        else:  # a JSON object in a string column
            parsed = F.from_json(attrs.cast("string"), "map<string,string>")
            bad_attrs = attrs.isNotNull() & ~_blank(attrs) & parsed.isNull()
        title = clean(col("title").cast("string"))
        out = df.select(
            F.trim(col("product_id").cast("string")).alias("product_id"),
            F.lit(cfg.namespace).alias("source"),
            title.alias("title"),
            clean(col("description").cast("string")).alias("description"),
            clean(col("brand").cast("string")).alias("brand"),
            F.nullif(F.trim(col("category_id").cast("string")), F.lit("")).alias("category_id"),
            F.coalesce(F.when(~bad_attrs, parsed), F.create_map().cast("map<string,string>")).alias("attributes"),
            "_row", raw.alias("_src"), nul.alias("_nul"), bad_attrs.alias("_bad_attrs"),
            F.length(F.trim(col("title").cast("string"))).alias("_title_len"),
        )
        missing = F.concat_ws(", ", F.when(_blank(F.col("product_id")), F.lit(src["product_id"])),
                              F.when(F.coalesce(F.col("title"), F.lit("")) == "", F.lit(src["title"])))
        why = (F.when(F.col("_nul"), F.lit("NUL byte in record"))
               .when(missing != "", F.concat(F.lit("missing "), missing))
               .when(F.col("_title_len") > MAX_TITLE,
                     F.concat(F.lit(f"{src['title']} longer than {MAX_TITLE} characters ("),
                              F.col("_title_len").cast("string"), F.lit(")")))
               .when(F.col("_bad_attrs"), F.lit(f"{src.get('attributes')} is not a JSON object of strings")))
        out = out.withColumn("why", why).drop("_nul", "_bad_attrs", "_title_len")
    else:
        label = F.trim(col("label").cast("string"))
        grade, label_why = _grade(label, cfg)
        qn = normalize_query_udf()(col("query").cast("string"))
        out = df.select(
            F.lit(cfg.namespace).alias("source"),
            col("query").cast("string").alias("query"),
            qn.alias("query_norm"),
            F.trim(col("product_id").cast("string")).alias("product_id"),
            grade.cast("int").alias("grade"),
            label.alias("raw_label"),
            "_row", raw.alias("_src"), nul.alias("_nul"), label_why.alias("_label_why"),
        )
        why = (F.when(F.col("_nul"), F.lit("NUL byte in record"))
               .when(_blank(F.col("product_id")), F.lit(f"missing {src['product_id']}"))
               .when(F.coalesce(F.col("query_norm"), F.lit("")) == "", F.lit(f"missing {src['query']}"))
               .when(F.col("_label_why").isNotNull(), F.col("_label_why")))
        out = (out.withColumn("why", why).drop("_nul", "_label_why")
               .withColumn("split", split_udf(split.dev_fraction, split.salt)(F.col("query_norm"))))
    key = spec(cfg.target).keys
    keyed = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.coalesce(F.col(k), F.lit(""))) for k in key])
    # The source record is kept only where a row check failed: accepted rows do not carry their text twice.
    out = out.withColumn("_src", F.when(F.col("why").isNotNull(), F.col("_src")))
    return out.withColumn("location", F.concat(F.lit(f"{location}:"), keyed))


def _grade(label: "Column", cfg: "TableSourceConfig") -> tuple["Column", "Column"]:
    """(grade, why the label is unusable) for a trimmed raw-label column, by the configured rule."""
    from pyspark.sql import functions as F

    shown = F.concat(F.lit("label '"), F.coalesce(label, F.lit("")), F.lit("'"))
    if cfg.grades is not None:
        grade = None
        for raw, g in cfg.grades.items():
            grade = (F.when(label == raw, F.lit(g)) if grade is None else grade.when(label == raw, F.lit(g)))
        allowed = ", ".join(sorted(cfg.grades))
        return grade, F.when(F.coalesce(label, F.lit("")) == "", F.lit("missing label")).when(
            grade.isNull(), F.concat(shown, F.lit(f" is not one of {allowed}")))
    if cfg.grade_bins is not None:
        partial_at, exact_at = cfg.grade_bins
        v = label.try_cast("double")
        finite = ~F.isnan(v) & (F.abs(v) != F.lit(float("inf")))
        why = (F.when(F.coalesce(label, F.lit("")) == "", F.lit("missing label"))
               .when(v.isNull(), F.concat(shown, F.lit(" is not a number")))
               .when(~finite, F.concat(shown, F.lit(" is not a finite number"))))
        if cfg.label_range is not None:
            lo, hi = cfg.label_range
            why = why.when((v < lo) | (v > hi), F.concat(shown, F.lit(f" is outside [{lo:g}, {hi:g}]")))
        grade = F.when(v >= exact_at, F.lit(2)).when(v >= partial_at, F.lit(1)).otherwise(F.lit(0))
        return grade, why
    g = label.try_cast("int")
    ok = g.isin(*GRADES) & (label == g.cast("string"))
    return F.when(ok, g), F.when(F.coalesce(label, F.lit("")) == "", F.lit("missing label")).when(
        ~F.coalesce(ok, F.lit(False)),
        F.concat(shown, F.lit(" is not a grade (0, 1, 2); map it with grades or grade_bins")))


def _resolved(checked: "DataFrame", target: str) -> "DataFrame":
    """``checked`` (staged, so ``_row`` is fixed) with the final ``why``, ``_first`` (the one row per key that
    is written) and ``raw`` (quarantined rows only).

    A row that passed the row checks conflicts when an earlier passing row (scan order) holds its key with
    other values in ``CONFLICT_COLUMNS``; the reason names those columns. The windows run over a narrow
    projection (key, ``_row``, one hash per compared column), and only the rows of repeated keys are joined
    back (broadcast, on ``_row``): neither the sort nor the join's build side carries the wide text columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(spec(target).keys)
    compare = CONFLICT_COLUMNS[target]

    def digest(c: str) -> "Column":
        v = F.to_json(F.array_sort(F.map_entries(F.col(c)))) if c == "attributes" else F.col(c).cast("string")
        return F.when(v.isNull(), F.lit(None).cast("long")).otherwise(F.xxhash64(v))

    narrow = checked.where(F.col("why").isNull()).select(*keys, "_row", *[digest(c).alias(f"_h_{c}") for c in compare])
    w = Window.partitionBy(*keys).orderBy("_row")
    whole = w.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    diff = F.concat_ws(", ", *[F.when(~F.col(f"_h_{c}").eqNullSafe(F.first(f"_h_{c}").over(whole)), F.lit(c))
                               for c in compare])
    # Only repeated keys need a verdict (a handful of rows in a real catalog): the join's build side stays small.
    repeated = narrow.withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy(*keys))).where("_n > 1")
    verdict = repeated.select("_row", diff.alias("_diff"), (F.row_number().over(w) == 1).alias("_head"))
    out = checked.join(F.broadcast(verdict), on="_row", how="left")
    why = F.coalesce(F.col("why"), F.when(F.col("_diff") != "", F.concat(
        F.lit("duplicate key conflicts with an earlier row on "), F.col("_diff"), F.lit("; first kept"))))
    # raw: the source record of a row that failed a check; the canonical row of a conflicting repeat.
    raw = F.coalesce(F.to_json(F.col("_src")),
                     F.to_json(F.struct(*[F.col(c) for c in spec(target).schema.names])))
    return (out.withColumn("why", why)
            .withColumn("_first", F.col("why").isNull() & F.coalesce(F.col("_head"), F.lit(True)))
            .withColumn("raw", F.when(F.col("why").isNotNull(),
                                      F.when(F.length(raw) > MAX_RAW, F.concat(F.substring(raw, 1, MAX_RAW),
                                                                               F.lit(" [...]"))).otherwise(raw)))
            .drop("_src", "_diff", "_head"))


def ingest_table(spark: "SparkSession", lakehouse: Lakehouse, path: str | Path, cfg: "TableSourceConfig", *,
                 run_id: str, split: "SplitConfig", limit: int | None = None) -> dict:
    """One table source -> its canonical table; returns the run's counts (also in ingest_log / run_log)."""
    from pyspark.sql import functions as F

    from strata.ingest.runlog import append_quarantine, log_counts
    from strata.ingest.upsert import append, upsert_df

    t0 = time.perf_counter()
    path = Path(path)
    table = cfg.target
    checked = _checked(read_source_table(spark, path, cfg), cfg, split, path.name, limit)
    staging = lakehouse.staging(f"ingest-{run_id}-{uuid.uuid4().hex[:6]}")
    try:  # staged once: the scan order (_row) is fixed for the counts, the MERGE and the quarantine
        checked.write.mode("overwrite").parquet(str(staging))
        rows = _resolved(spark.read.parquet(str(staging)), table)
        stats = rows.agg(F.count(F.lit(1)).alias("n"), F.count_if(F.col("why").isNull()).alias("ok"),
                         F.count_if(F.col("_first")).alias("keys")).collect()[0]
        read, accepted, keys = int(stats["n"]), int(stats["ok"]), int(stats["keys"])
        if keys or not lakehouse.exists(table):
            upsert_df(spark, lakehouse, table, rows.where("_first"))
        if read > accepted:
            append_quarantine(spark, lakehouse, rows.where("why IS NOT NULL").select(
                F.lit(cfg.namespace).alias("source"), F.lit(table).alias("target_table"), "location", "raw",
                F.col("why").alias("reason"), F.lit(run_id).alias("run_id")))
    finally:
        rmtree(staging)
    counts = {"source": cfg.namespace, "target_table": table, "read": read, "accepted": accepted,
              "quarantined": read - accepted, "upserted": keys, "seconds": round(time.perf_counter() - t0, 3)}
    append(spark, lakehouse, "ingest_log",
           pd.DataFrame([{**counts, "run_id": run_id}], columns=spec("ingest_log").schema.names))
    log_counts(spark, lakehouse, run_id, "ingest", [counts], detail=f"table {path.name} ({cfg.format})")
    log.info("%s -> %s (table %s): read %d, accepted %d, quarantined %d, upserted %d (%.1fs)", cfg.namespace,
             table, path.name, read, accepted, read - accepted, keys, counts["seconds"])
    return counts
