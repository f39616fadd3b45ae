"""The ingest stage on the embedded Sail server: idempotent upserts, quarantine, ingest_log, parquet mode."""

from __future__ import annotations

import gzip
import zipfile

import pytest

from strata.config import StrataConfig
from strata.ingest.config import DataConfig, SourceConfig
from strata.ingest.run import IngestResult, ingest, ingest_source
from strata.tables import TABLES, Lakehouse, spec

HEADER = "id,product_uid,product_title,search_term,relevance\n"
ROWS = [
    "1,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5",
    "2,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,3",
    "3,100002,BEHR Premium DeckOver 30°,deck over,3",
    "4,100002,BEHR Premium DeckOver 30°,deck over,3",  # exact repeat: accepted, one row written
    "5,100003,Whirlpool Microwave,microwave,1",
    "6,100003,Whirlpool Microwave,MICROWAVE,3",  # conflicting grade: quarantined
    "7,100004,Broken Row,query,high",  # bad relevance: label quarantined, product kept
    ",100005,No Id,query,2",  # missing id: both quarantined
]


def homedepot_file(folder, rows=ROWS):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "\n".join(rows) + "\n").encode()))
    return path


def snapshot(lh: Lakehouse, name: str) -> list[tuple]:
    """Table content as sorted plain tuples (maps as sorted pairs) for exact comparison."""
    rows = []
    for r in lh.read_arrow(name).to_pylist():
        rows.append(tuple(tuple(sorted(v)) if isinstance(v, list) and v and isinstance(v[0], tuple) else
                          tuple(v) if isinstance(v, list) else v for v in (r[c] for c in spec(name).schema.names)))
    return sorted(rows, key=repr)


def test_ingest_twice_leaves_identical_content(engines, tmp_path):
    path = homedepot_file(tmp_path / "hd")
    lh = Lakehouse(tmp_path / "lh")
    first = ingest_source("homedepot", path, engines=engines, lakehouse=lh, run_id="r1")
    by_table = {c["target_table"]: c for c in first}
    assert by_table["labels"] == {**by_table["labels"], "read": 8, "accepted": 5, "quarantined": 3, "upserted": 4}
    assert by_table["products"] == {**by_table["products"], "read": 8, "accepted": 7, "quarantined": 1, "upserted": 4}
    before = {t: snapshot(lh, t) for t in ("products", "labels")}
    versions = {t: lh.version(t) for t in ("products", "labels")}
    assert len(before["labels"]) == 4 and len(before["products"]) == 4

    second = ingest_source("homedepot", path, engines=engines, lakehouse=lh, run_id="r2")
    assert [{k: v for k, v in c.items() if k != "seconds"} for c in second] == [
        {k: v for k, v in c.items() if k != "seconds"} for c in first]
    for t in ("products", "labels"):
        assert snapshot(lh, t) == before[t], t
        assert lh.version(t) == versions[t] + 1, t

    quarantine = lh.read_arrow("quarantine").to_pandas()
    assert sorted(quarantine["run_id"].value_counts().items()) == [("r1", 4), ("r2", 4)]
    r1 = quarantine[quarantine["run_id"] == "r1"].set_index(["target_table", "location"])["reason"]
    assert r1[("labels", "train.csv.gz:8")] == "relevance 'high' is not a number"
    assert r1[("labels", "train.csv.gz:9")] == r1[("products", "train.csv.gz:9")] == "missing id"
    assert "conflicts with train.csv.gz:6 on grade" in r1[("labels", "train.csv.gz:7")]

    log = lh.read_arrow("ingest_log").to_pandas()
    assert len(log) == 4
    assert (log["read"] == log["accepted"] + log["quarantined"]).all()
    for c in first:
        row = log[(log["run_id"] == "r1") & (log["target_table"] == c["target_table"])].iloc[0]
        assert (row["source"], row["read"], row["accepted"], row["quarantined"]) == (
            "homedepot", c["read"], c["accepted"], c["quarantined"])


def test_a_changed_file_updates_rows_in_place(engines, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    ingest_source("homedepot", homedepot_file(tmp_path / "v1"), engines=engines, lakehouse=lh, run_id="r1")
    changed = [r.replace("Whirlpool Microwave", "Whirlpool 1.9 cu. ft. Microwave") for r in ROWS]
    changed.append("9,100009,New Product,new query,2")
    ingest_source("homedepot", homedepot_file(tmp_path / "v2", changed), engines=engines, lakehouse=lh, run_id="r2")
    products = lh.read_arrow("products").to_pandas().set_index("product_id")
    assert products.index.is_unique and len(products) == 5
    assert products.loc["100003", "title"] == "Whirlpool 1.9 cu. ft. Microwave"
    labels = lh.read_arrow("labels").to_pandas()
    assert ("new query", "100009") in set(zip(labels["query_norm"], labels["product_id"]))


def _small_sources(root):
    homedepot_file(root / "homedepot")
    (root / "google").mkdir()
    (root / "google" / "taxonomy-with-ids.en-US.txt").write_text(
        "# v\n1 - Animals & Pet Supplies\n2 - Animals & Pet Supplies > Pet Supplies\nbroken\n")
    bb = root / "bestbuy-small"
    bb.mkdir()
    (bb / "train.csv").write_text(
        "user,sku,category,query,click_time,query_time\n"
        "u1,1004622,abcat0701002,gears of war 3,2011-09-14 12:46:28.66,2011-09-14 12:45:07.064\n")
    with zipfile.ZipFile(bb / "small_product_data.xml.zip", "w") as z:
        z.writestr("small_product_data.xml",
                   "<products><product><sku>1004622</sku><name>Sniper - Xbox 360</name><categoryPath>"
                   "<category><id>cat00000</id><name>Best Buy</name></category></categoryPath></product></products>")
    return [
        SourceConfig(name="homedepot", path="homedepot/train.csv.gz"),
        SourceConfig(name="google-taxonomy", path="google"),
        SourceConfig(name="bestbuy-small", path=str(bb)),  # absolute paths work too
    ]


def test_ingest_runs_every_configured_source(engines, tmp_path):
    sources = _small_sources(tmp_path / "data")
    config = StrataConfig(data=DataConfig(root=str(tmp_path / "data"), sources=sources))
    lh = Lakehouse(tmp_path / "lh")
    result = ingest(config.data, config.split, engines, lh, run_id="run-1")
    assert isinstance(result, IngestResult)
    got = {(c["source"], c["target_table"]): (c["read"], c["accepted"], c["quarantined"], c["upserted"])
           for c in result.counts}
    assert got == {
        ("homedepot", "products"): (8, 7, 1, 4),
        ("homedepot", "labels"): (8, 5, 3, 4),
        ("google-taxonomy", "taxonomy"): (3, 2, 1, 2),
        ("bestbuy-small", "search_events"): (1, 1, 0, 2),
        ("bestbuy-small", "products"): (1, 1, 0, 1),
        ("bestbuy-small", "taxonomy"): (1, 1, 0, 1),
    }
    assert set(result.versions) == set(TABLES)
    assert result.versions["queries"] is None and result.versions["search_events"] == 0
    assert result.versions["products"] == 1  # written by homedepot, merged by bestbuy-small
    products = lh.read_arrow("products").to_pandas()
    assert sorted(set(products["source"])) == ["bestbuy", "homedepot"]
    taxonomy = lh.read_arrow("taxonomy").to_pandas()
    assert sorted(zip(taxonomy["source"], taxonomy["category_id"])) == [
        ("bestbuy", "cat00000"), ("google", "1"), ("google", "2")]
    log = lh.read_arrow("ingest_log").to_pandas()
    assert len(log) == 6 and (log["read"] == log["accepted"] + log["quarantined"]).all()
    run_log = lh.read_arrow("run_log").to_pandas()  # the same counts, with upserted and the job name
    assert sorted(run_log["job"]) == ["ingest"] * 5 + ["ingest-events"]
    assert (run_log["read"] == run_log["accepted"] + run_log["quarantined"]).all()


def test_parquet_lakehouse_upserts_without_merge(engines, tmp_path):
    lh = Lakehouse(tmp_path / "lh", "parquet")
    path = homedepot_file(tmp_path / "hd")
    ingest_source("homedepot", path, engines=engines, lakehouse=lh, run_id="r1")
    before = snapshot(lh, "labels")
    ingest_source("homedepot", path, engines=engines, lakehouse=lh, run_id="r2")
    assert snapshot(lh, "labels") == before
    changed = [r.replace("l bracket,2.5", "l bracket,1") for r in ROWS]
    counts = ingest_source("homedepot", homedepot_file(tmp_path / "v2", changed), engines=engines, lakehouse=lh,
                           run_id="r3")
    assert lh.version("labels") is None and counts
    labels = lh.read_arrow("labels").to_pandas().set_index(["query_norm", "product_id"])
    assert len(labels) == 4 and labels.loc[("l bracket", "100001"), "grade"] == 0
    assert sorted(p.name for p in (tmp_path / "lh").iterdir()) == [
        "ingest_log", "labels", "products", "quarantine", "run_log"]  # no staged or retired directories left


def test_a_file_error_names_the_file_and_writes_nothing(engines, tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("id,product_uid,search_term\n1,2,x\n")
    lh = Lakehouse(tmp_path / "lh")
    with pytest.raises(ValueError, match=r"train\.csv: missing required column\(s\) product_title, relevance"):
        ingest_source("homedepot", bad, engines=engines, lakehouse=lh, run_id="r1")
    assert not (tmp_path / "lh").exists()
