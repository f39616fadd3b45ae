"""Table sources (a retailer's own catalog / label table) ingested in Spark: the adapters' rules, the
accounting, idempotence, config checks, and the same tables as the Home Depot adapter on the real file."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from strata.config import StrataConfig
from strata.config_base import SplitConfig
from strata.ingest.config import DataConfig, SourceConfig, TableSourceConfig
from strata.ingest.run import ingest, ingest_source
from strata.ingest.table_source import ingest_table
from strata.sources.base import MAX_TITLE, SourceSchemaError
from strata.tables import Lakehouse
from strata.text import normalize_query, split_of

from tests.ingest.test_ingest_run import snapshot

PRODUCTS = TableSourceConfig(target="products", namespace="acme", columns={
    "product_id": "sku", "title": "name", "description": "desc", "brand": "brand", "category_id": "cat",
    "attributes": "attrs"})


def product_rows() -> list[dict]:
    return [
        {"sku": " 1 ", "name": "Cordless  Drill\u00a0 18V", "desc": "A drill", "brand": "Ryobi", "cat": "c1",
         "attrs": json.dumps({"voltage": "18V"})},
        {"sku": "2", "name": "Hammer", "desc": None, "brand": None, "cat": None, "attrs": None},
        {"sku": "2", "name": "Hammer", "desc": None, "brand": None, "cat": None, "attrs": None},  # exact repeat
        {"sku": "3", "name": "Saw", "desc": "first", "brand": "B", "cat": "c2", "attrs": "{}"},
        {"sku": "3", "name": "Saw", "desc": "second", "brand": "B", "cat": "c3", "attrs": "{}"},  # conflict
        {"sku": "", "name": "No id", "desc": None, "brand": None, "cat": None, "attrs": None},
        {"sku": "5", "name": "  ", "desc": None, "brand": None, "cat": None, "attrs": None},
        {"sku": "6", "name": "x" * (MAX_TITLE + 1), "desc": None, "brand": None, "cat": None, "attrs": None},
        {"sku": "7", "name": "Bad\u0000byte", "desc": None, "brand": None, "cat": None, "attrs": None},
        {"sku": "8", "name": "Lamp", "desc": None, "brand": None, "cat": None, "attrs": "not json"},
    ]


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def quarantine(lh: Lakehouse) -> dict[str, str]:
    return {r["location"]: r["reason"] for r in lh.read_arrow("quarantine").to_pylist()}


def test_products_follow_the_adapter_rules(spark, tmp_path):
    path = write_parquet(tmp_path / "in" / "catalog.parquet", product_rows())
    lh = Lakehouse(tmp_path / "lh")
    counts = ingest_table(spark, lh, path, PRODUCTS, run_id="r1", split=SplitConfig())
    assert {k: counts[k] for k in ("read", "accepted", "quarantined", "upserted")} == {
        "read": 10, "accepted": 4, "quarantined": 6, "upserted": 3}
    rows = {r["product_id"]: r for r in lh.read_arrow("products").to_pylist()}
    assert sorted(rows) == ["1", "2", "3"]
    assert rows["1"]["title"] == "Cordless Drill 18V" and rows["1"]["attributes"] == [("voltage", "18V")]
    assert rows["1"]["source"] == "acme" and rows["1"]["category_id"] == "c1"
    assert rows["2"]["description"] is None and rows["2"]["attributes"] == []
    assert rows["3"]["description"] == "first"  # the first in scan order is kept
    assert quarantine(lh) == {
        "catalog.parquet:source=acme, product_id=3": "duplicate key conflicts with an earlier row on description, "
                                                     "category_id; first kept",
        "catalog.parquet:source=acme, product_id=": "missing sku",
        "catalog.parquet:source=acme, product_id=5": "missing name",
        "catalog.parquet:source=acme, product_id=6": f"name longer than {MAX_TITLE} characters ({MAX_TITLE + 1})",
        "catalog.parquet:source=acme, product_id=7": "NUL byte in record",
        "catalog.parquet:source=acme, product_id=8": "attrs is not a JSON object of strings",
    }
    q = lh.read_arrow("quarantine").to_pylist()
    assert len(q) == 6
    assert all(r["run_id"] == "r1" and r["target_table"] == "products" for r in q)
    assert json.loads(next(r["raw"] for r in q if r["reason"] == "missing sku"))["name"] == "No id"
    log = [r for r in lh.read_arrow("run_log").to_pylist() if r["run_id"] == "r1"]
    assert [(r["read"], r["accepted"], r["quarantined"]) for r in log] == [(10, 4, 6)]


def test_map_typed_attributes_and_a_rerun_change_nothing(spark, tmp_path):
    rows = [{"sku": "1", "name": "Drill", "attrs": [("b", "2"), ("a", "1")]},
            {"sku": "1", "name": "Drill", "attrs": [("a", "1"), ("b", "2")]}]  # same map, other order: agrees
    schema = pa.schema([("sku", pa.string()), ("name", pa.string()), ("attrs", pa.map_(pa.string(), pa.string()))])
    path = tmp_path / "cat"
    path.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path / "part-0.parquet")
    cfg = TableSourceConfig(target="products", namespace="acme",
                            columns={"product_id": "sku", "title": "name", "attributes": "attrs"})
    lh = Lakehouse(tmp_path / "lh")
    first = ingest_table(spark, lh, path, cfg, run_id="r1", split=SplitConfig())
    assert (first["accepted"], first["quarantined"], first["upserted"]) == (2, 0, 1)
    before, version = snapshot(lh, "products"), lh.version("products")
    assert dict(lh.read_arrow("products").to_pylist()[0]["attributes"]) == {"a": "1", "b": "2"}
    second = ingest_table(spark, lh, path, cfg, run_id="r2", split=SplitConfig())
    assert {k: v for k, v in second.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}
    assert snapshot(lh, "products") == before and lh.version("products") == version + 1
    assert not (lh.root / "_staging").exists() or not any((lh.root / "_staging").iterdir())


def test_labels_from_csv_with_a_grade_map(spark, tmp_path):
    csv = tmp_path / "labels" / "judgments.csv"
    csv.parent.mkdir()
    csv.write_text("q;sku;rating\n"
                   "Cordless Drill;1;Exact\n"
                   "cordless  drill;2;Partial\n"
                   "cordless drill;2;partial-ish\n"
                   "  ;3;Exact\n"
                   "hammer;;Exact\n"
                   "hammer;4;Irrelevant\n"
                   "HAMMER;4;Exact\n"
                   "saw;5;Exact\n"
                   "SAW;5;Exact\n")
    cfg = TableSourceConfig(target="labels", namespace="acme", format="csv", delimiter=";",
                            columns={"query": "q", "product_id": "sku", "label": "rating"},
                            grades={"Exact": 2, "Partial": 1, "Irrelevant": 0})
    lh = Lakehouse(tmp_path / "lh")
    split = SplitConfig(dev_fraction=0.5, salt="t")
    counts = ingest_table(spark, lh, csv, cfg, run_id="r1", split=split)
    assert (counts["read"], counts["accepted"], counts["quarantined"], counts["upserted"]) == (9, 5, 4, 4)
    got = {(r["query_norm"], r["product_id"]): r for r in lh.read_arrow("labels").to_pylist()}
    assert sorted(got) == [("cordless drill", "1"), ("cordless drill", "2"), ("hammer", "4"), ("saw", "5")]
    assert got[("cordless drill", "1")]["query"] == "Cordless Drill" and got[("cordless drill", "1")]["grade"] == 2
    assert got[("hammer", "4")]["grade"] == 0 and got[("hammer", "4")]["raw_label"] == "Irrelevant"
    for (qn, _), r in got.items():
        assert r["split"] == split_of(qn, 0.5, "t") and r["query_norm"] == normalize_query(r["query"])
    assert sorted(quarantine(lh).values()) == sorted([
        "label 'partial-ish' is not one of Exact, Irrelevant, Partial", "missing q", "missing sku",
        "duplicate key conflicts with an earlier row on grade; first kept"])


@pytest.mark.parametrize("rule", ["bins", "integers"])
def test_numeric_labels(spark, tmp_path, rule):
    labels = ["2.5", "3", "1", "nan", "inf", "4", "high", "2", "0"]
    rows = [{"q": f"q{i}", "sku": str(i), "rel": v} for i, v in enumerate(labels)]
    path = write_parquet(tmp_path / "l.parquet", rows)
    kw = {"grade_bins": (2.0, 2.67), "label_range": (1, 3)} if rule == "bins" else {}
    cfg = TableSourceConfig(target="labels", namespace="hd", columns={"query": "q", "product_id": "sku",
                                                                     "label": "rel"}, **kw)
    lh = Lakehouse(tmp_path / "lh")
    ingest_table(spark, lh, path, cfg, run_id="r", split=SplitConfig())
    got = {r["raw_label"]: r["grade"] for r in lh.read_arrow("labels").to_pylist()}
    reasons = {loc.split("product_id=")[1]: why for loc, why in quarantine(lh).items()}
    if rule == "bins":  # the Home Depot binning (strata.sources.homedepot.grade_of)
        assert got == {"2.5": 1, "3": 2, "1": 0, "2": 1}
        assert reasons == {"3": "label 'nan' is not a finite number", "4": "label 'inf' is not a finite number",
                           "5": "label '4' is outside [1, 3]", "6": "label 'high' is not a number",
                           "8": "label '0' is outside [1, 3]"}
    else:
        assert got == {"1": 1, "2": 2, "0": 0}
        assert set(reasons) == {"0", "1", "3", "4", "5", "6"}
        assert reasons["0"] == "label '2.5' is not a grade (0, 1, 2); map it with grades or grade_bins"
    assert not any(isinstance(v, float) and math.isnan(v) for v in got.values())


def test_mapping_errors_are_config_errors():
    with pytest.raises(ValidationError, match="required column"):
        TableSourceConfig(target="products", namespace="a", columns={"product_id": "sku"})
    with pytest.raises(ValidationError, match="unknown column"):
        TableSourceConfig(target="labels", namespace="a", columns={"query": "q", "product_id": "p", "label": "l",
                                                                  "grade": "g"})
    with pytest.raises(ValidationError, match="labels only"):
        TableSourceConfig(target="products", namespace="a", columns={"product_id": "p", "title": "t"},
                          grades={"E": 2})
    with pytest.raises(ValidationError, match="not both"):
        TableSourceConfig(target="labels", namespace="a", columns={"query": "q", "product_id": "p", "label": "l"},
                          grades={"E": 2}, grade_bins=(1, 2))
    with pytest.raises(ValidationError, match="0, 1 or 2"):
        TableSourceConfig(target="labels", namespace="a", columns={"query": "q", "product_id": "p", "label": "l"},
                          grades={"E": 3})
    with pytest.raises(ValidationError, match="needs a `table:` mapping"):
        SourceConfig(name="table", path="x")
    with pytest.raises(ValidationError, match="adapter"):
        SourceConfig(name="homedepot", path="x", table=PRODUCTS)


def test_a_missing_column_or_path_fails_before_writing(spark, tmp_path):
    path = write_parquet(tmp_path / "c.parquet", [{"sku": "1", "title": "x"}])
    lh = Lakehouse(tmp_path / "lh")
    with pytest.raises(SourceSchemaError, match=r"\['name'\] not in the table"):
        ingest_table(spark, lh, path, TableSourceConfig(target="products", namespace="a",
                                                        columns={"product_id": "sku", "title": "name"}),
                     run_id="r", split=SplitConfig())
    with pytest.raises(SourceSchemaError, match="not found"):
        ingest_table(spark, lh, tmp_path / "nope", PRODUCTS, run_id="r", split=SplitConfig())
    assert not lh.exists("products") and not lh.exists("quarantine")


def test_configured_table_source_runs_through_ingest(engines, tmp_path):
    write_parquet(tmp_path / "data" / "catalog.parquet", product_rows())
    config = StrataConfig(data=DataConfig(root=str(tmp_path / "data"), sources=[
        SourceConfig(name="table", path="catalog.parquet", limit=4, table=PRODUCTS)]))
    lh = Lakehouse(tmp_path / "lh")
    result = ingest(config.data, config.split, engines, lh, run_id="r1")
    assert [(c["source"], c["read"], c["accepted"], c["upserted"]) for c in result.counts] == [("acme", 4, 4, 3)]
    assert result.versions["products"] is not None


def test_home_depot_as_a_table_equals_the_adapter(engines, data_root, tmp_path, monkeypatch):
    """The real Home Depot file parsed once, written as a table and ingested both ways: the same products,
    labels and counts, and the table path hands the driver no rows (only the one-row logs)."""
    from strata.sources.files import read_bytes, read_delimited
    from strata.sources.homedepot import COLUMNS

    hd = data_root / "homedepot" / "train.csv.gz"
    if not hd.exists():
        pytest.skip(f"{hd} absent")
    data, name = read_bytes(hd)
    rows = [r.fields for r in read_delimited(data, name, delimiter=",", required=COLUMNS)[1] if r.fields]
    table = write_parquet(tmp_path / "hd.parquet", rows)
    a, b = Lakehouse(tmp_path / "a"), Lakehouse(tmp_path / "b")
    by_adapter = {c["target_table"]: c for c in ingest_source("homedepot", hd, engines=engines, lakehouse=a,
                                                              run_id="r")}
    sizes = []
    to_spark = Lakehouse.to_spark
    monkeypatch.setattr(Lakehouse, "to_spark", lambda self, s, n, f: sizes.append(len(f)) or to_spark(self, s, n, f))
    cfgs = [TableSourceConfig(target="products", namespace="homedepot",
                              columns={"product_id": "product_uid", "title": "product_title"}),
            TableSourceConfig(target="labels", namespace="homedepot", grade_bins=(2.0, 2.67), label_range=(1, 3),
                              columns={"product_id": "product_uid", "query": "search_term", "label": "relevance"})]
    for cfg in cfgs:
        got = ingest_table(engines.spark, b, table, cfg, run_id="r", split=SplitConfig())
        want = by_adapter[cfg.target]
        assert [got[k] for k in ("read", "accepted", "quarantined", "upserted")] == [
            want[k] for k in ("read", "accepted", "quarantined", "upserted")], cfg.target
        assert snapshot(b, cfg.target) == snapshot(a, cfg.target), cfg.target
    assert max(sizes) == 1  # ingest_log and run_log rows only
