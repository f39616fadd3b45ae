"""JVM PATH: the same job code on classic (JVM) Spark in local mode, parquet lakehouse (no Delta jars here).

Runs in a subprocess (one JVM; keeps the classic session away from the Spark Connect session of the other
tests): the search-log ingest (first run + one new day) and the features job on the hand-computable fixture.
The features output must equal what the embedded Sail engine writes for the same fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

from strata.features.job import run_features
from strata.tables import Lakehouse

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="classic JVM Spark needs java on PATH")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from strata.engines import EngineConfig
    from strata.engines import Engines
    from strata.features.job import run_features
    from strata.ingest.events import ingest_search_log
    from strata.tables import Lakehouse

    features_root, log_dir, events_root = sys.argv[1:4]
    out = {}
    with Engines(EngineConfig(spark="classic", spark_master="local[1]")) as eng:
        spark = eng.spark
        out["kind"] = type(spark).__module__
        lh = Lakehouse(events_root, "parquet")
        out["first"] = ingest_search_log(spark, lh, log_dir, run_id="j1")
        with open(os.path.join(log_dir, "clicks-2011-09-16.csv"), "w") as f:
            f.write("user,sku,category,query,click_time,query_time\\n"
                    "u4,9854804,abcat0701002,dead island,2011-09-16 12:46:28.66,2011-09-16 12:45:07.064\\n")
        out["second"] = ingest_search_log(spark, lh, log_dir, run_id="j2")
        out["features"] = run_features(spark, Lakehouse(features_root, "parquet"), "jvm-1").counts
    print("RESULT " + json.dumps(out, default=str))
    sys.stdout.flush()
    os._exit(0)
    """
)


def _norm(rows):
    def fix(v):
        if isinstance(v, list) and v and isinstance(v[0], tuple):
            return sorted(v)
        return v
    return sorted(repr({k: fix(v) for k, v in sorted(r.items())}) for r in rows)


def test_jvm_spark_runs_ingest_and_features_on_parquet(features_lakehouse, spark, tmp_path):
    root = features_lakehouse("parquet")
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "train.csv").write_text(
        "user,sku,category,query,click_time,query_time\n"
        "u1,9854804,abcat0701002,Gears of War 3,2011-09-14 12:46:28.66,2011-09-14 12:45:07.064\n"
        ",9854804,abcat0701002,halo,2011-09-14 12:00:01,2011-09-14 12:00:00\n"  # missing user
        "u3,1004622,abcat0701002,battlefield 3,2011-09-15 12:46:28.66,2011-09-15 12:45:07.064\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)  # set by the Sail session
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(log_dir), str(tmp_path / "events")],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["kind"].startswith("pyspark.sql.session") or "connect" not in out["kind"]
    first, second = out["first"], out["second"]
    assert (first["read"], first["accepted"], first["quarantined"], first["upserted"]) == (3, 2, 1, 4)
    assert (second["read"], second["accepted"], second["days"]) == (1, 1, ["2011-09-16", "2011-09-16"])
    events = pq.read_table(str(tmp_path / "events" / "search_events")).to_pylist()
    assert len(events) == 6 and len({e["event_id"] for e in events}) == 6

    # Same features as the embedded engine (Delta) on the same fixture.
    delta_lh = Lakehouse(features_lakehouse("delta"))
    run_features(spark, delta_lh, "sail-1")
    for name in ("product_features", "taxonomy_neighbours", "query_stats", "query_product_engagement",
                 "query_attributes"):
        jvm_rows = pq.read_table(str(root / name)).to_pylist()
        assert _norm(jvm_rows) == _norm(delta_lh.read_arrow(name).to_pylist()), name
