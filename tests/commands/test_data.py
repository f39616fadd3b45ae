"""`strata ingest` as a user runs it: a file with malformed rows -> the job succeeds, bad rows are in
quarantine with a reason, and the counts add up."""

from __future__ import annotations

import json
import subprocess
import sys

from deltalake import DeltaTable

CSV = (
    "id,product_uid,product_title,search_term,relevance\n"
    "1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5\n"
    "2,,Missing product id,anything,3\n"  # missing id
    "3,100002,BEHR DeckOver 1-gal.,deck over,three\n"  # wrong type
    "4,100003,Delta Vero Shower Trim,rain shower head,2.33\n"
)


def test_ingest_cli_quarantines_bad_rows(tmp_path):
    src = tmp_path / "train.csv"
    src.write_text(CSV)
    lh = tmp_path / "lh"
    r = subprocess.run(
        [sys.executable, "-c", "from strata.cli import main; main()", "ingest", "--source", "homedepot",
         "--path", str(src), "--lakehouse", str(lh)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    labels = next(c for c in out["counts"] if c["target_table"] == "labels")
    assert (labels["read"], labels["accepted"], labels["quarantined"]) == (4, 2, 2)
    q = DeltaTable(str(lh / "quarantine")).to_pyarrow_table().to_pylist()
    reasons = " ".join(row["reason"] for row in q if row["target_table"] == "labels")
    assert "product_uid" in reasons and "relevance" in reasons
    assert all(row["run_id"] == out["run_id"] for row in q)
    assert DeltaTable(str(lh / "labels")).to_pyarrow_table().num_rows == 2
