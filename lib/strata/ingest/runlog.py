"""The run log (``run_log``): counts per job and table, appended once per run; and quarantine appends.

Every job (ingest, search-log increments, category enrichment, features) logs ``read``, ``accepted``,
``quarantined`` and ``upserted`` per target table; for ingest jobs read = accepted + quarantined always
(checked here, so a job that loses rows fails instead of logging a lie). Derived tables (features) log
read = accepted = the rows they wrote and quarantined = 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from strata.tables import Lakehouse, spec

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


class AccountingError(RuntimeError):
    """read != accepted + quarantined: a job lost or invented rows."""


def log_counts(spark: "SparkSession", lakehouse: Lakehouse, run_id: str, job: str, counts: list[dict],
               detail: str | None = None) -> None:
    from strata.ingest.upsert import append

    rows = []
    for c in counts:
        if int(c["read"]) != int(c["accepted"]) + int(c["quarantined"]):
            raise AccountingError(
                f"{job}: {c['source']} -> {c['target_table']}: read {c['read']} != accepted {c['accepted']} "
                f"+ quarantined {c['quarantined']}"
            )
        rows.append({
            "run_id": run_id, "job": job, "source": c["source"], "target_table": c["target_table"],
            "read": int(c["read"]), "accepted": int(c["accepted"]), "quarantined": int(c["quarantined"]),
            "upserted": int(c.get("upserted") or 0), "seconds": float(c.get("seconds") or 0.0),
            "detail": c.get("detail", detail),
        })
    append(spark, lakehouse, "run_log", pd.DataFrame(rows, columns=spec("run_log").schema.names))


def append_quarantine(spark: "SparkSession", lakehouse: Lakehouse, df: "DataFrame") -> None:
    """Append a Spark DataFrame of quarantined rows (already shaped like ``quarantine``)."""
    lakehouse.write(df.select(*spec("quarantine").schema.names), "quarantine",
                    mode="append" if lakehouse.exists("quarantine") else "overwrite")
