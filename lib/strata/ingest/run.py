"""The ingest stage: each configured source -> adapter -> canonical tables (upsert), quarantine, ingest_log.

Adapters parse and validate row by row in Python (the formats are zipped TSV, XML and JSON at tens of MB);
this stage dedupes by key, builds one Spark DataFrame per table and upserts it, so the stage is idempotent:
re-ingesting the same files leaves identical table content (and new Delta versions). A ``table`` source (a
retailer's own catalog or label table, ``strata.ingest.table_source``) never enters the driver: Spark reads,
checks and MERGEs it; so does the search log (``strata.ingest.events``). The table contract is the same on
every path.

Counts per (source, table): ``read``, ``accepted`` and ``quarantined`` are source *records*
(read = accepted + quarantined, always); ``upserted`` is the distinct key rows written (a click-log record
yields two events; repeated records collapse to one row). ``seconds`` is the table's share of the source's
parse time plus its write time, so a source's seconds add up to its wall time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from strata.config_base import SplitConfig
from strata.ingest.config import DataConfig
from strata.engines import Engines
from strata.ingest.runlog import log_counts
from strata.ingest.upsert import append, dedupe_keys, upsert
from strata.sources.base import SourceData
from strata.sources.registry import load_source
from strata.tables import TABLES, Lakehouse, spec

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    counts: list[dict]  # one per (source, target_table)
    versions: dict[str, int | None]  # every canonical table's Delta version after ingest (None: absent/parquet)


def _quarantine_frame(data: SourceData, run_id: str) -> pd.DataFrame:
    q = data.quarantine.copy()
    q["run_id"] = run_id
    return q[spec("quarantine").schema.names]


def write_source(data: SourceData, *, engines: Engines, lakehouse: Lakehouse, run_id: str,
                 parse_seconds: float = 0.0) -> list[dict]:
    """Upsert an adapter's tables, append its quarantine and counts; returns the counts."""
    data.check()
    spark = engines.spark
    quarantined = data.quarantined()
    share = parse_seconds / max(1, len(data.read))
    counts = []
    for table in data.read:
        t0 = time.perf_counter()
        frame = data.tables.get(table)
        rows = dedupe_keys(table, frame) if frame is not None else None
        upserted = upsert(spark, lakehouse, table, rows) if rows is not None else 0
        counts.append(
            {
                "source": data.source,
                "target_table": table,
                "read": int(data.read[table]),
                "accepted": int(data.accepted.get(table, 0)),
                "quarantined": int(quarantined.get(table, 0)),
                "upserted": int(upserted),
                "seconds": round(share + time.perf_counter() - t0, 3),
            }
        )
    if len(data.quarantine):
        append(spark, lakehouse, "quarantine", _quarantine_frame(data, run_id))
    log_rows = pd.DataFrame([{**c, "run_id": run_id} for c in counts], columns=spec("ingest_log").schema.names)
    append(spark, lakehouse, "ingest_log", log_rows)
    log_counts(spark, lakehouse, run_id, "ingest", counts)
    return counts


def ingest_source(
    name: str,
    path: str | Path,
    *,
    engines: Engines,
    lakehouse: Lakehouse,
    run_id: str,
    limit: int | None = None,
    split: SplitConfig = SplitConfig(),
    backfill: tuple[date, date] | None = None,
    events_in_spark: bool = True,
) -> list[dict]:
    """Load one dataset into the lakehouse; returns one counts dict per target table.

    ``bestbuy-small``: the catalog goes through the adapter, the search log through the incremental Spark
    job (``strata.ingest.events``; ``backfill`` = (FROM, TO) reprocesses those days).
    """
    if backfill is not None and name != "bestbuy-small":
        raise ValueError(f"--backfill applies to search logs (bestbuy-small), not {name!r}")
    t0 = time.perf_counter()
    spark_log = name == "bestbuy-small" and events_in_spark
    if spark_log:
        from strata.ingest.events import find_log_files
        from strata.sources.bestbuy_small import load_bestbuy_small

        # File-level problems of the log (missing, wrong delimiter, missing columns) fail before the catalog
        # is written, so a bad log leaves every table as it was.
        find_log_files(Path(path))

        data = load_bestbuy_small(Path(path), limit=limit, split=split, logs=False).check()
    else:
        data = load_source(name, Path(path), limit=limit, split=split)
    parse_seconds = time.perf_counter() - t0
    counts = write_source(data, engines=engines, lakehouse=lakehouse, run_id=run_id, parse_seconds=parse_seconds)
    if spark_log:
        from strata.ingest.events import ingest_search_log

        ev = ingest_search_log(engines.spark, lakehouse, path, run_id=run_id, backfill=backfill, limit=limit)
        counts.append(ev)
        append(engines.spark, lakehouse, "ingest_log",
               pd.DataFrame([{**ev, "run_id": run_id}], columns=spec("ingest_log").schema.names))
    for c in counts:
        log.info(
            "%s -> %s: read %d, accepted %d, quarantined %d, upserted %d (%.1fs)",
            c["source"], c["target_table"], c["read"], c["accepted"], c["quarantined"], c["upserted"],
            c["seconds"],
        )
    return counts


def ingest(data: DataConfig, split: SplitConfig, engines: Engines, lakehouse: Lakehouse, run_id: str) -> IngestResult:
    """Every ``data.sources`` entry, in order, with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    counts: list[dict] = []
    sources = data.sources
    data.check_sources()  # every path confined before anything is read or written
    with Progress(
        TextColumn("ingest {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), transient=True,
    ) as progress:
        task = progress.add_task("", total=len(sources))
        for src in sources:
            progress.update(task, description=src.name)
            if src.table is not None:  # a retailer's own table: read, checked and MERGEd in Spark
                from strata.ingest.table_source import ingest_table

                counts.append(ingest_table(engines.spark, lakehouse, data.source_path(src), src.table,
                                           run_id=run_id, split=split, limit=src.limit))
                progress.advance(task)
                continue
            counts += ingest_source(
                src.name,
                data.source_path(src),
                engines=engines,
                lakehouse=lakehouse,
                run_id=run_id,
                limit=src.limit,
                split=split,
            )
            progress.advance(task)
    return IngestResult(counts=counts, versions={n: lakehouse.version(n) for n in TABLES})
