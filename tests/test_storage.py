"""strata.storage and the Lakehouse on an object store: against a real S3-compatible server (moto's server mode,
its own process: the ``s3_server`` fixture), through the same engines a cluster uses (Sail, delta-rs, pyarrow)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

from strata.storage import ObjectPath, is_remote, location, rmtree
from strata.tables import Lakehouse


def test_locations_local_and_remote(tmp_path):
    assert location(str(tmp_path / "a" / ".." / "b")) == tmp_path / "b"
    assert location(f"file://{tmp_path}") == tmp_path
    lake = location("s3://bucket/lake/")
    assert isinstance(lake, ObjectPath) and str(lake) == "s3://bucket/lake"
    assert str(lake / "_staging" / "mine-1") == "s3://bucket/lake/_staging/mine-1"
    assert (lake / "t").name == "t" and (lake / "t").parent == lake and lake.parent.parent == lake.parent
    assert is_remote("s3://b/k") and is_remote("gs://b/k") and not is_remote("/tmp/x")
    with pytest.raises(ValueError, match="unsupported storage scheme"):
        location("ftp://host/x")
    with pytest.raises(ValueError, match="needs a bucket"):
        location("s3://")


def test_object_paths_on_a_real_s3_server(s3_server):
    root = location(s3_server("strata-paths")) / "lake"
    assert not root.exists() and not root.is_dir() and list(root.iterdir()) == []
    (root / "_staging" / "mine-a" / "x.txt").write_text("a")
    (root / "_staging" / "mine-b" / "y.txt").write_text("b")
    (root / "_staging" / "judge-c" / "z.txt").write_text("c")
    staging = root / "_staging"
    assert staging.is_dir() and (staging / "mine-a" / "x.txt").is_file()
    assert [p.name for p in staging.glob("mine-*")] == ["mine-a", "mine-b"]
    assert (staging / "mine-b" / "y.txt").read_text() == "b"
    with pytest.raises(OSError, match="not empty"):
        staging.rmdir()
    for p in staging.glob("mine-*"):
        rmtree(p)
    rmtree(staging / "mine-a")  # already gone: no error
    assert [p.name for p in staging.iterdir()] == ["judge-c"]
    rmtree(staging / "judge-c")
    staging.rmdir()  # empty now
    assert not staging.exists()


def test_lakehouse_on_s3_writes_merges_and_streams(s3_server, spark):
    from strata.ingest.upsert import upsert

    lh = Lakehouse(s3_server("strata-lake") + "/lh")
    assert lh.remote and not lh.exists("products") and lh.versions() == {}
    rows = [dict(product_id=f"p{i}", source="shop", title=f"title {i}", description=None, brand=None,
                 category_id=None, attributes=[]) for i in range(30)]
    upsert(spark, lh, "products", pd.DataFrame(rows))
    changed = [dict(r, title="new " + r["title"]) for r in rows[:5]] + [
        dict(rows[0], product_id="p99", title="added")]
    upsert(spark, lh, "products", pd.DataFrame(changed))  # Spark SQL MERGE INTO on s3://
    assert lh.exists("products") and lh.version("products") == 1
    table = lh.read_arrow("products", ["product_id", "title"]).to_pandas().set_index("product_id")["title"]
    assert len(table) == 31 and table["p0"] == "new title 0" and table["p99"] == "added" and table["p7"] == "title 7"
    got = [b.num_rows for b in lh.scan_batches("products", ["product_id"], filter=pc.field("title") == "added")]
    assert sum(got) == 1
    assert lh.read(spark, "products", version=0).count() == 30  # time travel through Sail
    from deltalake import DeltaTable

    ops = [h["operation"] for h in DeltaTable(str(lh.path("products"))).history()]
    assert ops[0] == "MERGE"


def test_parquet_lakehouse_needs_a_local_root(s3_server):
    with pytest.raises(ValueError, match="object storage takes lakehouse.format=delta"):
        Lakehouse("s3://any-bucket/lh", "parquet")
    assert Lakehouse(Path("rel"), "parquet").root == Path("rel").resolve()
