"""Catalog + label ingest at 1x..Nx: the row-level adapter path vs the Spark-only table source, same rows.

Input: the real Home Depot ``train.csv`` (66,534 records), replicated k times with the product ids (and row
ids) suffixed per copy, so kx has k x 50,309 products and k x 66,534 labels. Each copy is written twice: as
``train.csv.gz`` for the ``homedepot`` adapter (parsed row by row in the driver, one pandas frame per table,
``createDataFrame`` + MERGE) and as one parquet file (row groups of ``ROW_GROUP`` rows) for the ``table`` source (``strata.ingest.table_source``:
Spark reads, checks, dedupes and MERGEs; products and labels are two table sources over the same file).
Both write the same tables (``tests/ingest/test_table_source.py`` checks it at 1x).

Every (path, factor) runs in its own child process with a fresh embedded Sail server and lakehouse; wall
seconds exclude starting Spark; peak RSS is the child's own (Sail runs inside it, so Spark's buffers count).

    .venv/bin/python bench/bench_ingest_table.py --factors 1,2,4,8,16 --out bench/results/ingest_table.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))

from peak_rss import PeakRSS  # noqa: E402

PATHS = ("adapter", "table")
# Rows per parquet row group of the table input: a warehouse table is written in row groups (Spark's default
# is ~128 MB), and a reader decodes one at a time; one group for the whole file would make any reader hold it.
ROW_GROUP = 20_000


def write_inputs(data_root: Path, work: Path, k: int) -> tuple[Path, Path]:
    """kx copies of the Home Depot records as train.csv.gz and as parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from strata.sources.files import read_bytes, read_delimited
    from strata.sources.homedepot import COLUMNS

    out = work / f"x{k}"
    csv_path, pq_path = out / "hd" / "train.csv.gz", out / "hd.parquet"
    if csv_path.exists() and pq_path.exists():
        return csv_path, pq_path
    data, name = read_bytes(data_root / "homedepot" / "train.csv.gz")
    base = [r.fields for r in read_delimited(data, name, delimiter=",", required=COLUMNS)[1] if r.fields]
    rows = [r if j == 0 else {**r, "id": f"{r['id']}-{j}", "product_uid": f"{r['product_uid']}-{j}"}
            for j in range(k) for r in base]
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(csv_path, "wt", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), pq_path, row_group_size=ROW_GROUP)
    return csv_path, pq_path


def child(path: str, k: int, work: Path, data: Path) -> dict:
    from strata.config_base import SplitConfig
    from strata.engines import EngineConfig
    from strata.ingest.config import TableSourceConfig
    from strata.engines import Engines
    from strata.ingest.run import ingest_source
    from strata.ingest.table_source import ingest_table
    from strata.tables import Lakehouse

    csv_path, pq_path = write_inputs(data, work, k)
    lh = Lakehouse(work / f"x{k}" / f"lh-{path}")
    shutil.rmtree(lh.root, ignore_errors=True)
    with Engines(EngineConfig()) as eng:
        eng.spark.sql("SELECT 1").collect()
        with PeakRSS(every=0.1, include_self=True) as peak:
            t0 = time.perf_counter()
            if path == "adapter":
                counts = ingest_source("homedepot", csv_path, engines=eng, lakehouse=lh, run_id="bench")
            else:
                counts = [ingest_table(eng.spark, lh, pq_path, cfg, run_id="bench", split=SplitConfig()) for cfg in (
                    TableSourceConfig(target="products", namespace="homedepot",
                                      columns={"product_id": "product_uid", "title": "product_title"}),
                    TableSourceConfig(target="labels", namespace="homedepot", grade_bins=(2.0, 2.67),
                                      label_range=(1, 3), columns={"product_id": "product_uid",
                                                                   "query": "search_term", "label": "relevance"}))]
            secs = time.perf_counter() - t0
    return {"path": path, "factor": k, "seconds": round(secs, 2), "peak_rss_mb": round(peak.peak / 1e6, 1),
            "records": int(counts[0]["read"]),
            "written": {c["target_table"]: int(c["upserted"]) for c in counts}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--factors", default="1,2,4,8")
    ap.add_argument("--work", default="/tmp/strata-bench-ingest-table")
    ap.add_argument("--data", default=None, help="the shared data folder (default $STRATA_DATA or ../shared/data)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest_table.json"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = Path(a.work)
    from strata.ingest.config import default_data_root

    data = Path(a.data or os.environ.get("STRATA_DATA") or default_data_root())
    if not (data / "homedepot" / "train.csv.gz").is_file():
        raise SystemExit(f"{data}/homedepot/train.csv.gz not found: pass --data (the shared data folder)")
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), work, data)))
        sys.stdout.flush()
        os._exit(0)  # skip the delta-rs teardown abort (tests/conftest.py)
    runs = []
    for k in [int(x) for x in a.factors.split(",")]:
        for path in PATHS:
            proc = subprocess.run([sys.executable, __file__, "--work", str(work), "--data", str(data),
                                   "--child", path, str(k)],
                                  capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(proc.stdout[-2000:] + proc.stderr[-3000:])
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    by = {(r["path"], r["factor"]): r for r in runs}
    rows = []
    for k in sorted({r["factor"] for r in runs}):
        ad, tb = by[("adapter", k)], by[("table", k)]
        rows.append({"factor": k, "records": ad["records"], "adapter_s": ad["seconds"], "table_s": tb["seconds"],
                     "time_ratio_table_adapter": round(tb["seconds"] / ad["seconds"], 3),
                     "adapter_peak_mb": ad["peak_rss_mb"], "table_peak_mb": tb["peak_rss_mb"],
                     "same_counts": ad["written"] == tb["written"]})
    res = {"command": " ".join([".venv/bin/python", "bench/bench_ingest_table.py", *sys.argv[1:]]),
           "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs, "summary": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print("| factor | records | adapter s | table s | table/adapter | adapter peak MB | table peak MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['factor']}x | {r['records']:,} | {r['adapter_s']} | {r['table_s']} | "
              f"{r['time_ratio_table_adapter']} | {r['adapter_peak_mb']:,} | {r['table_peak_mb']:,} |")


if __name__ == "__main__":
    main()
