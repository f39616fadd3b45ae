"""Search-log ingest in Spark, incremental by day: click-log CSV files -> ``search_events``.

The Best Buy log (``user, sku, category, query, click_time, query_time``; one row = a query followed by a
click on ``sku``) and its unlabeled split (no ``sku``) are read with Spark's CSV reader, validated and
normalised in Spark SQL, and MERGEd into ``search_events`` (partitioned by ``event_date``) on
``(source, event_id)``. Every ``*.csv`` / ``*.csv.gz`` file in the folder whose header has the log's columns
is read, so new days can arrive as new files (``clicks-2011-11-01.csv``) next to the old ones.

Ids are the same content hashes the row-level adapter used (``event_id`` = sha1 of event type, user,
ISO time, raw query, sku; ``session_id`` = sha1 of user and raw query_time), so re-running on the same input
writes the same keys: the content is unchanged and only a Delta version is added.

Incremental: a record belongs to the day of its ``query_time``. The newest day processed is kept per
(source, table) in ``ingest_state``; a run processes only records of days after it (all days on the first
run) and moves it forward. ``backfill=(FROM, TO)`` reprocesses exactly the days FROM..TO (inclusive) and
never moves the watermark back. Records whose ``query_time`` is not a timestamp belong to no day: they are
quarantined on every run that reads them (the run log counts them under that run).

File-level problems fail loudly (``SourceSchemaError``): no log file, a header without the required columns
(with a wrong-delimiter hint), a truncated/corrupt gzip, and a record with *more* fields than the header
(Sail's CSV reader has no permissive mode for it: the job fails naming the file and line, before writing).
Row-level problems (missing user / query / sku / time, too few fields, unparseable time, a time outside
[``EVENT_TS_MIN``, ``EVENT_TS_MAX``), a NUL byte, invalid UTF-8) go to ``quarantine`` with a reason;
read = accepted + quarantined. A time out of range belongs to no day either (it must not move the
watermark to 2999). Spark's CSV reader turns invalid UTF-8 into U+FFFD and has no other encoding, so every
file is scanned first: in a file with invalid UTF-8 bytes, the records holding U+FFFD are quarantined (a
wholly Windows-1252 file loses its non-ASCII records this way, where the row-level adapter would decode it;
the real logs are UTF-8, with a few literal U+FFFD that stay accepted).
"""

from __future__ import annotations

import codecs
import gzip
import logging
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from strata.sources.base import EVENT_TS_MAX, EVENT_TS_MIN, SourceSchemaError
from strata.tables import Lakehouse, spec

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SOURCE = "bestbuy-small"
TABLE = "search_events"
CLICK_COLUMNS = ("user", "sku", "query", "click_time", "query_time")
SEARCH_COLUMNS = ("user", "query", "query_time")
_SEP = "\u001f"


@dataclass(frozen=True)
class LogFile:
    path: Path
    columns: tuple[str, ...]
    clicks: bool
    invalid_utf8: bool = False  # some bytes are not UTF-8: records Spark decoded with U+FFFD are quarantined


def _header(path: Path) -> tuple[list[str], bool]:
    """The header line and whether the file has invalid UTF-8; the whole stream is read, so a truncated or
    corrupt gzip is found here (CRC and length are only verified at the end of the stream)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    invalid = False
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")) as f:
            first = chunk = f.readline()
            while chunk:
                if not invalid:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        invalid = True
                chunk = f.read(1 << 20)
            if not invalid:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    invalid = True
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise SourceSchemaError(f"{path}: truncated or corrupt gzip file ({e})") from None
    if invalid:
        log.warning("%s: not valid UTF-8; records with undecodable bytes go to quarantine", path.name)
    text = first.decode("utf-8-sig", errors="replace").strip()
    return ([c.strip().strip('"').lower() for c in text.split(",")] if text else []), invalid


def find_log_files(folder: Path) -> list[LogFile]:
    """Every click-log / search-log CSV in ``folder`` (or ``folder`` itself when it is a file)."""
    folder = Path(folder)
    if not folder.exists():
        raise SourceSchemaError(f"{folder}: not found")
    candidates = [folder] if folder.is_file() else sorted(
        p for p in folder.iterdir() if p.is_file() and (p.name.endswith(".csv") or p.name.endswith(".csv.gz"))
    )
    files: list[LogFile] = []
    for p in candidates:
        header, invalid_utf8 = _header(p)
        if set(CLICK_COLUMNS) <= set(header):
            files.append(LogFile(p, tuple(header), True, invalid_utf8))
        elif set(SEARCH_COLUMNS) <= set(header):
            files.append(LogFile(p, tuple(header), False, invalid_utf8))
        elif folder.is_file() or p.name.startswith(("train", "test", "queries", "clicks", "events")):
            hint = ""
            if len(header) == 1 and any(d in header[0] for d in ("\t", ";", "|")):
                hint = " (the header is one column: wrong delimiter? comma-separated expected)"
            raise SourceSchemaError(
                f"{p}: missing required column(s) "
                f"{', '.join(c for c in CLICK_COLUMNS if c not in header)}; header has {header}{hint}"
            )
    if not files:
        raise SourceSchemaError(f"{folder}: no search-log CSV (needs columns {', '.join(SEARCH_COLUMNS)})")
    return files


def _read_file(spark: "SparkSession", f: LogFile) -> "DataFrame":
    """One file as string columns + ``_file`` + ``_bad`` (why the record is malformed, NULL if fine)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(c, T.StringType(), True) for c in f.columns])
    df = (
        spark.read.option("header", True).option("mode", "PERMISSIVE")
        .option("allowTruncatedRows", True)  # Sail: a short record (cut off, NUL padding) gets NULLs, not an error
        .schema(schema).csv(str(f.path))
    )
    if not f.clicks:
        df = df.withColumn("sku", F.lit(None).cast("string")).withColumn("click_time", F.lit(None).cast("string"))
    return df.select(
        F.lit(f.path.name).alias("_file"),
        F.lit(f.clicks).alias("_clicks"),
        F.lit(f.invalid_utf8).alias("_bad_utf8"),
        *[F.col(c) for c in ("user", "sku", "query", "click_time", "query_time")],
    )


def _csv_error(spark: "SparkSession", files: list[LogFile], error: Exception) -> SourceSchemaError:
    """A record Sail's CSV reader cannot read (more fields than the header), as a file-level error naming the
    file; only called after the job failed, so finding the file costs nothing on the normal path."""
    for f in files:
        try:
            _read_file(spark, f).count()
        except Exception as e:  # noqa: BLE001 (the connect client raises its own exception types)
            if "Csv error" in str(e):
                return SourceSchemaError(f"{f.path}: unreadable CSV record ({str(e).splitlines()[0]})")
    names = ", ".join(str(f.path) for f in files)
    return SourceSchemaError(f"{names}: unreadable CSV record ({str(error).splitlines()[0]})")


def _iso(col: str) -> str:
    """Python's ``datetime.isoformat()`` in SQL: microseconds only when non-zero."""
    return (
        f"CASE WHEN date_format({col}, 'SSSSSS') = '000000' "
        f"THEN date_format({col}, \"yyyy-MM-dd'T'HH:mm:ss\") "
        f"ELSE date_format({col}, \"yyyy-MM-dd'T'HH:mm:ss.SSSSSS\") END"
    )


def _validated(spark: "SparkSession", raw: "DataFrame", normalize) -> "DataFrame":
    """Raw records with parsed times, ``query_norm``, ``query_day`` and ``why`` (NULL = accepted)."""
    from pyspark.sql import functions as F

    fields = "concat_ws('', user, sku, query, click_time, query_time)"
    lo, hi = (f"TIMESTAMP_NTZ '{t:%Y-%m-%d %H:%M:%S}'" for t in (EVENT_TS_MIN, EVENT_TS_MAX))
    span = f"[{EVENT_TS_MIN:%Y-%m-%d}, {EVENT_TS_MAX:%Y-%m-%d})"
    df = raw.select(
        "*",
        F.expr("try_cast(trim(query_time) AS timestamp_ntz)").alias("q_ts"),
        F.expr("try_cast(trim(click_time) AS timestamp_ntz)").alias("c_ts"),
        normalize(F.col("query")).alias("query_norm"),
    )
    why = F.expr(
        f"""
        CASE
          WHEN user IS NULL AND query IS NULL AND query_time IS NULL THEN 'malformed record (no fields parsed)'
          WHEN instr({fields}, '\\u0000') > 0 THEN 'NUL byte in record'
          WHEN _bad_utf8 AND instr({fields}, '\\uFFFD') > 0 THEN 'invalid UTF-8 (undecodable bytes in the record)'
          WHEN coalesce(trim(user), '') = '' THEN 'missing user'
          WHEN _clicks AND coalesce(trim(sku), '') = '' THEN 'missing sku'
          WHEN coalesce(trim(query_time), '') = '' THEN 'missing query_time'
          WHEN _clicks AND coalesce(trim(click_time), '') = '' THEN 'missing click_time'
          WHEN query_norm = '' THEN 'query is blank'
          WHEN q_ts IS NULL THEN concat('query_time ', query_time, ' is not a timestamp')
          WHEN _clicks AND c_ts IS NULL THEN concat('click_time ', click_time, ' is not a timestamp')
          WHEN q_ts < {lo} OR q_ts >= {hi} THEN concat('query_time ', query_time, ' is out of range {span}')
          WHEN _clicks AND (c_ts < {lo} OR c_ts >= {hi})
            THEN concat('click_time ', click_time, ' is out of range {span}')
        END
        """
    )
    in_range = F.expr(f"q_ts >= {lo} AND q_ts < {hi}")
    return df.withColumn("why", why).withColumn("query_day", F.when(in_range, F.to_date("q_ts")))


def _events(ok: "DataFrame") -> "DataFrame":
    """Accepted records -> one search event (+ one click event for click-log rows), deduped by event_id."""
    from pyspark.sql import functions as F

    base = ok.select(
        F.trim("user").alias("user_id"),
        F.col("query"),
        F.col("query_norm"),
        F.trim("sku").alias("sku"),
        F.col("q_ts"),
        F.col("c_ts"),
        F.col("_clicks"),
        F.expr(f"substr(sha1(concat_ws('{_SEP}', trim(user), trim(query_time))), 1, 20)").alias("session_id"),
    )
    searches = base.select(
        F.expr(f"substr(sha1(concat_ws('{_SEP}', 'search', user_id, {_iso('q_ts')}, query, '')), 1, 20)")
        .alias("event_id"),
        F.col("q_ts").alias("ts"), "session_id", "user_id", "query", "query_norm",
        F.lit(None).cast("string").alias("product_id"), F.lit("search").alias("event_type"),
    )
    clicks = base.where("_clicks").select(
        F.expr(f"substr(sha1(concat_ws('{_SEP}', 'click', user_id, {_iso('c_ts')}, query, sku)), 1, 20)")
        .alias("event_id"),
        F.col("c_ts").alias("ts"), "session_id", "user_id", "query", "query_norm",
        F.col("sku").alias("product_id"), F.lit("click").alias("event_type"),
    )
    events = searches.unionByName(clicks).select(
        "event_id", F.lit(SOURCE).alias("source"), "ts", "session_id", "user_id", "query", "query_norm",
        "product_id", "event_type", F.lit(None).cast("int").alias("position"), F.to_date("ts").alias("event_date"),
    )
    # One row per key, deterministically (the same event seen twice, e.g. in train and test).
    events.createOrReplaceTempView("strata_events_all")
    return events.sparkSession.sql(
        "SELECT event_id, source, ts, session_id, user_id, query, query_norm, product_id, event_type, position, "
        "event_date FROM (SELECT *, row_number() OVER (PARTITION BY source, event_id ORDER BY session_id, "
        "query) AS _rn FROM strata_events_all) WHERE _rn = 1"
    )


def read_watermark(spark: "SparkSession", lakehouse: Lakehouse, source: str = SOURCE,
                   table: str = TABLE) -> date | None:
    if not lakehouse.exists("ingest_state"):
        return None
    rows = (
        lakehouse.read(spark, "ingest_state")
        .where(f"source = '{source}' AND target_table = '{table}'")
        .select("watermark").collect()
    )
    return rows[0]["watermark"] if rows else None


def _write_state(spark: "SparkSession", lakehouse: Lakehouse, watermark: date, run_id: str) -> None:
    from strata.ingest.upsert import upsert

    frame = pd.DataFrame(
        [{"source": SOURCE, "target_table": TABLE, "watermark": watermark, "run_id": run_id,
          "updated_at": datetime.now(timezone.utc).replace(tzinfo=None)}]
    )
    upsert(spark, lakehouse, "ingest_state", frame)


def _upsert_events(spark: "SparkSession", lakehouse: Lakehouse, events: "DataFrame") -> None:
    cols = spec(TABLE).schema.names
    events = events.select(*cols)
    if not lakehouse.exists(TABLE):
        lakehouse.root.mkdir(parents=True, exist_ok=True)
        writer = events.write.format(lakehouse.format).mode("overwrite")
        if lakehouse.format == "delta":  # parquet stays flat: Lakehouse.exists looks for top-level files
            writer = writer.partitionBy("event_date")
        writer.save(str(lakehouse.path(TABLE)))
        return
    if lakehouse.format == "delta":
        view = f"strata_events_{uuid.uuid4().hex[:8]}"
        events.createOrReplaceTempView(view)
        try:
            spark.sql(
                f"MERGE INTO delta.`{lakehouse.path(TABLE)}` AS t USING {view} AS s "
                "ON t.source = s.source AND t.event_id = s.event_id "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            ).collect()
        finally:
            spark.catalog.dropTempView(view)
    else:  # parquet: staged anti-join + union, swapped in (see upsert._swap_parquet)
        from strata.ingest.upsert import _swap_parquet

        _swap_parquet(spark, lakehouse, TABLE, events)


def ingest_search_log(
    spark: "SparkSession",
    lakehouse: Lakehouse,
    path: str | Path,
    *,
    run_id: str,
    backfill: tuple[date, date] | None = None,
    limit: int | None = None,
) -> dict:
    """Process the new days (or the backfill range) of a search-log folder; returns the run's counts."""
    from pyspark.sql import functions as F

    from strata.ingest.runlog import append_quarantine, log_counts
    from strata.sparkfn import normalize_query_udf

    t0 = time.perf_counter()
    files = find_log_files(Path(path))
    raw = None
    for f in files:
        df = _read_file(spark, f)
        if limit is not None:  # the first N records in file order: a bare limit() takes whichever split of a
            # plain CSV answers first, so re-running a limited ingest would read other records
            df = df.withColumn("_row", F.monotonically_increasing_id()).orderBy("_row").limit(limit).drop("_row")
        raw = df if raw is None else raw.unionByName(df)
    normalize = normalize_query_udf()
    checked = _validated(spark, raw, normalize)

    watermark = read_watermark(spark, lakehouse)
    if backfill is not None:
        lo, hi = backfill
        if lo > hi:
            raise ValueError(f"--backfill: FROM {lo} is after TO {hi}")
        in_scope = F.col("query_day").isNull() | F.col("query_day").between(F.lit(lo), F.lit(hi))
        mode = f"backfill {lo}..{hi}"
    elif watermark is not None:
        in_scope = F.col("query_day").isNull() | (F.col("query_day") > F.lit(watermark))
        mode = f"incremental after {watermark}"
    else:
        in_scope = F.lit(True)
        mode = "full (no watermark)"
    scoped = checked.where(in_scope)
    scoped.createOrReplaceTempView("strata_log_scoped")

    try:  # the first action: CSV records Sail cannot read fail here, before anything is written
        stats = spark.sql(
            "SELECT count(*) AS n, count_if(why IS NULL) AS ok, count_if(why IS NOT NULL) AS bad, "
            "min(CASE WHEN why IS NULL THEN query_day END) AS lo, max(CASE WHEN why IS NULL THEN query_day END) AS hi "
            "FROM strata_log_scoped"
        ).collect()[0]
    except Exception as e:  # noqa: BLE001
        if "Csv error" not in str(e):
            raise
        raise _csv_error(spark, files, e) from None
    read, accepted, quarantined = int(stats["n"]), int(stats["ok"]), int(stats["bad"])
    upserted = 0
    if accepted:
        events = _events(scoped.where("why IS NULL"))
        upserted = events.count()
        _upsert_events(spark, lakehouse, events)
    if quarantined:
        bad = scoped.where("why IS NOT NULL").select(
            F.lit(SOURCE).alias("source"), F.lit(TABLE).alias("target_table"),
            F.concat_ws(":", "_file", F.expr(
                "substr(sha1(concat_ws(',', user, sku, query, click_time, query_time)), 1, 12)"
            )).alias("location"),
            F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in ("user", "sku", "query", "click_time",
                                                                       "query_time")]).alias("raw"),
            F.col("why").alias("reason"),
            F.lit(run_id).alias("run_id"),
        )
        append_quarantine(spark, lakehouse, bad)
    new_mark = watermark
    if stats["hi"] is not None and (watermark is None or stats["hi"] > watermark):
        new_mark = stats["hi"]
    if new_mark is not None and new_mark != watermark:
        _write_state(spark, lakehouse, new_mark, run_id)
    seconds = round(time.perf_counter() - t0, 3)
    counts = {
        "source": SOURCE, "target_table": TABLE, "read": read, "accepted": accepted,
        "quarantined": quarantined, "upserted": upserted, "seconds": seconds,
        "mode": mode, "days": [str(stats["lo"]) if stats["lo"] else None, str(stats["hi"]) if stats["hi"] else None],
        "watermark": str(new_mark) if new_mark else None, "files": [f.path.name for f in files],
    }
    log_counts(spark, lakehouse, run_id, "ingest-events", [counts],
               detail=f"{mode}; days {counts['days'][0]}..{counts['days'][1]}; watermark {counts['watermark']}")
    log.info("%s -> %s (%s): read %d, accepted %d, quarantined %d, upserted %d (%.1fs)", SOURCE, TABLE, mode,
             read, accepted, quarantined, upserted, seconds)
    return counts
