"""Data-platform benchmark: ingest + features on the real data, a DuckDB reference, and log scaling.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_data.py [--data ../shared/data] [--work /tmp/strata-bench]

1. Ingest (embedded Sail, Delta): google-taxonomy, homedepot (full), bestbuy-small (full click log via the
   Spark job + catalog XML), bestbuy-catalog (category tree + product dumps). Wall time and records/s per
   source; peak RSS of this process (Sail runs in-process) sampled every 0.1 s.
2. Features job on that lakehouse: wall time, per-table seconds.
3. DuckDB reference, same run: query_stats + query_product_engagement (the log join/aggregations) in DuckDB
   over the same Delta tables (read with delta-rs, read time included); ratio = Sail seconds / DuckDB seconds
   for those two tables.
4. Scaling: search_events replicated 1x / 4x / 16x (copy k shifted by k*120 days, user/session/event ids
   suffixed), features job timed on each; the log-dependent tables' seconds reported with the ratio to 1x.

Writes bench/results/data.json (and prints it). Numbers depend on the machine and on concurrent load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil

from strata.catalogs import catalog_sql
from strata.engines import EngineConfig
from strata.ingest.config import default_data_root
from strata.engines import Engines
from strata.features.job import run_features
from strata.ingest.run import ingest_source
from strata.tables import Lakehouse

LOG_TABLES = ("query_stats", "query_product_engagement", "query_attributes")


class PeakRSS:
    def __init__(self, interval: float = 0.1):
        self.proc = psutil.Process()
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(True))
            except psutil.Error:
                rss = 0
            self.peak = max(self.peak, rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


DUCK_QUERY_STATS = f"""
WITH q AS (SELECT source, query_norm, count_if(event_type = 'search') AS searches,
                  count(DISTINCT session_id) AS sessions, count_if(event_type = 'click') AS clicks
           FROM ev GROUP BY ALL),
s AS (SELECT source, query_norm, session_id, bool_or(event_type = 'search') AS hs, bool_or(event_type = 'click') AS hc
      FROM ev GROUP BY ALL),
z AS (SELECT source, query_norm, count_if(hs AND NOT hc) / nullif(count_if(hs), 0) AS zcr FROM s GROUP BY ALL),
seg AS (SELECT source, query_norm, (sum(searches) OVER (PARTITION BY source ORDER BY searches DESC, query_norm
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - searches) / sum(searches) OVER (PARTITION BY source) AS sb
        FROM q),
cats AS (SELECT e.source, e.query_norm, p.category_id, count(*) AS n FROM ev e
         JOIN pr p ON p.source = {catalog_sql('e.source')}
                  AND p.product_id = e.product_id
         WHERE e.event_type = 'click' AND p.category_id IS NOT NULL GROUP BY ALL),
top AS (SELECT source, query_norm, list(category_id ORDER BY n DESC, category_id)[1:3] AS cs FROM cats GROUP BY ALL)
SELECT q.*, q.clicks / nullif(q.searches, 0) AS ctr, z.zcr,
       CASE WHEN sb < 0.5 THEN 'head' WHEN sb < 0.8 THEN 'torso' ELSE 'tail' END AS segment, coalesce(top.cs, []) AS tc
FROM q JOIN z USING (source, query_norm) JOIN seg USING (source, query_norm)
LEFT JOIN top USING (source, query_norm)
"""
DUCK_ENGAGEMENT = """
SELECT source, query_norm, product_id, count_if(event_type = 'click') AS clicks FROM ev
WHERE product_id IS NOT NULL GROUP BY ALL
"""


def duckdb_reference(lh: Lakehouse, out: Path | None = None) -> dict:
    """The two log tables in DuckDB over the same Delta tables; with ``out``, its results are written as Delta
    tables there too, as the features job writes its own (the same work end to end: read, compute, write)."""
    import duckdb
    from deltalake import DeltaTable, write_deltalake

    t0 = time.perf_counter()
    ev = DeltaTable(str(lh.path("search_events"))).to_pyarrow_table(
        columns=["source", "query_norm", "session_id", "event_type", "product_id"])
    pr = DeltaTable(str(lh.path("products"))).to_pyarrow_table(columns=["source", "product_id", "category_id"])
    t_read = time.perf_counter() - t0
    con = duckdb.connect()
    con.register("ev", ev)
    con.register("pr", pr)
    t1 = time.perf_counter()
    stats = con.sql(DUCK_QUERY_STATS).to_arrow_table()
    eng = con.sql(DUCK_ENGAGEMENT).to_arrow_table()
    t_sql = time.perf_counter() - t1
    t2 = time.perf_counter()
    if out is not None:
        for name, table in (("query_stats", stats), ("query_product_engagement", eng)):
            write_deltalake(str(out / name), table, mode="overwrite")
    t_write = time.perf_counter() - t2
    return {"read_seconds": round(t_read, 3), "sql_seconds": round(t_sql, 3), "write_seconds": round(t_write, 3),
            "seconds": round(t_read + t_sql + t_write, 3), "query_stats_rows": len(stats),
            "engagement_rows": len(eng), "events": ev.num_rows}


def replicate(spark, src: Lakehouse, dst: Lakehouse, k: int) -> int:
    from pyspark.sql import functions as F

    for name in ("products", "taxonomy"):
        dst.write(src.read(spark, name), name)
    ev = src.read(spark, "search_events")
    rep = spark.range(k).withColumnRenamed("id", "r")
    out = ev.crossJoin(rep).select(
        F.concat("event_id", F.lit("-"), F.col("r").cast("string")).alias("event_id"), "source",
        F.expr("ts + make_interval(0, 0, 0, cast(r * 120 AS int), 0, 0, 0)").alias("ts"),
        F.concat("session_id", F.lit("-"), F.col("r").cast("string")).alias("session_id"),
        F.concat("user_id", F.lit("-"), F.col("r").cast("string")).alias("user_id"),
        "query", "query_norm", "product_id", "event_type", "position",
        F.expr("date_add(event_date, cast(r * 120 AS int))").alias("event_date"),
    )
    dst.write(out, "search_events")
    return dst.read(spark, "search_events").count()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("STRATA_DATA") or default_data_root()))
    ap.add_argument("--work", type=Path, default=Path("/tmp/strata-bench"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data.json")
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--scaling-only", action="store_true",
                    help="re-measure only the scaling section on the --work lakehouse of an earlier run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.scaling_only:
        result = json.loads(args.out.read_text())
        with Engines(EngineConfig()) as eng:
            result["scaling_first_run"] = result.get("scaling")
            result["scaling"] = scaling_runs(eng.spark, Lakehouse(args.work / "lh"), args)
            result["scaling_load_avg_at_start"] = os.getloadavg()[0]
        _save(args, result)
        return
    shutil.rmtree(args.work, ignore_errors=True)
    lh = Lakehouse(args.work / "lh")
    sources = [
        ("google-taxonomy", args.data / "google-taxonomy"),
        ("homedepot", args.data / "homedepot" / "train.csv.gz"),
        ("bestbuy-small", args.data / "bestbuy-small"),
        ("bestbuy-catalog", args.data / "bestbuy-catalog"),
    ]
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_avg_at_start": os.getloadavg()[0]},
                    "engine": "sail (pysail, in-process) + Delta",
                    "command": "python bench/bench_data.py " + " ".join(sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d")}
    with Engines(EngineConfig()) as eng, PeakRSS() as mem:
        spark = eng.spark
        ingest = []
        t_all = time.perf_counter()
        for name, path in sources:
            t0 = time.perf_counter()
            counts = ingest_source(name, path, engines=eng, lakehouse=lh, run_id=f"bench-{name}")
            secs = time.perf_counter() - t0
            records = sum(c["read"] for c in counts)
            ingest.append({"source": name, "seconds": round(secs, 2), "records_read": records,
                           "records_per_s": round(records / secs, 1),
                           "tables": {c["target_table"]: {k: c[k] for k in ("read", "accepted", "quarantined",
                                                                            "upserted")} for c in counts}})
        ingest_secs = time.perf_counter() - t_all
        ingest_peak = mem.peak_mb
        t0 = time.perf_counter()
        feats = run_features(spark, lh, "bench-features").counts
        feat_secs = time.perf_counter() - t0
        n_events = lh.read(spark, "search_events").count()
        result["ingest"] = {"seconds": round(ingest_secs, 2),
                            "records_read": sum(i["records_read"] for i in ingest),
                            "records_per_s": round(sum(i["records_read"] for i in ingest) / ingest_secs, 1),
                            "peak_rss_mb": ingest_peak, "by_source": ingest}
        result["features"] = {"seconds": round(feat_secs, 2), "search_events": n_events,
                              "events_per_s": round(n_events / feat_secs, 1), "peak_rss_mb": mem.peak_mb,
                              "tables": {c["target_table"]: {"rows": c["upserted"], "seconds": c["seconds"]}
                                         for c in feats}}
        sail_log = sum(c["seconds"] for c in feats if c["target_table"] in ("query_stats", "query_product_engagement"))
        duck = duckdb_reference(lh, args.work / "duckdb-out")
        result["duckdb_reference"] = {**duck, "sail_seconds": round(sail_log, 3),
                                      "ratio_sail_over_duckdb": round(sail_log / duck["seconds"], 2)}
        result["scaling"] = scaling_runs(spark, lh, args)
        result["peak_rss_mb"] = mem.peak_mb
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _save(args, result)


def _save(args, result: dict) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


def scaling_runs(spark, lh: Lakehouse, args) -> list[dict]:
    """Features on the log replicated k times; one untimed 1x warm-up run first (cold-start costs)."""
    warm = Lakehouse(args.work / "scale-warmup")
    replicate(spark, lh, warm, 1)
    run_features(spark, warm, "bench-warmup")
    shutil.rmtree(args.work / "scale-warmup", ignore_errors=True)
    scaling = []
    for k in [int(x) for x in args.scales.split(",")]:
        dst = Lakehouse(args.work / f"scale-{k}")
        n = replicate(spark, lh, dst, k)
        t0 = time.perf_counter()
        counts = run_features(spark, dst, f"bench-scale-{k}").counts
        total = time.perf_counter() - t0
        log_secs = sum(c["seconds"] for c in counts if c["target_table"] in LOG_TABLES)
        scaling.append({"factor": k, "events": n, "features_seconds": round(total, 2),
                        "log_tables_seconds": round(log_secs, 2), "events_per_s": round(n / log_secs, 1),
                        "tables_seconds": {c["target_table"]: c["seconds"] for c in counts}})
        shutil.rmtree(args.work / f"scale-{k}", ignore_errors=True)  # keep /tmp small
    base = scaling[0]["log_tables_seconds"]
    for s in scaling:
        s["time_ratio_vs_1x"] = round(s["log_tables_seconds"] / base, 2)
        s["linear_would_be"] = s["factor"]
    return scaling


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # delta-rs teardown abort after MERGE (see tests/conftest.py)
