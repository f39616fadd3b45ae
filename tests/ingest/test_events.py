"""Search-log ingest in Spark: incremental by day (watermark in ingest_state), backfill, idempotent MERGE,
and honest accounting for corrupted input (read = accepted + quarantined, file errors fail loudly)."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from strata.ingest.events import ingest_search_log, read_watermark
from strata.sources.base import SourceSchemaError
from strata.sources.bestbuy_small import load_bestbuy_small
from strata.tables import Lakehouse

HEADER = "user,sku,category,query,click_time,query_time\n"


def _row(user, sku, query, day, hh="12:46:28.66", qh="12:45:07.064"):
    return f"{user},{sku},abcat0701002,{query},2011-09-{day:02d} {hh},2011-09-{day:02d} {qh}\n"


DAYS = {
    14: [_row("u1", "9854804", "Gears of War 3", 14), _row("u2", "2670133", "  gears  of WAR 3", 14, "13:00:00",
                                                             "12:59:59")],
    15: [_row("u3", "1004622", "battlefield 3", 15)],
    16: [_row("u4", "9854804", "dead island", 16), _row("u5", "2670133", "rocksmith", 16, "10:00:00", "09:59:00")],
}


def _write(folder, days, name="train.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(HEADER + "".join(r for d in days for r in DAYS[d]))
    return folder


def _events(lh):
    return sorted(repr(sorted(r.items())) for r in lh.read_arrow("search_events").to_pylist())


def _log(lh):
    return [r for r in lh.read_arrow("run_log").to_pylist() if r["job"] == "ingest-events"]


def test_first_run_then_only_the_new_day(spark, tmp_path):
    folder = _write(tmp_path / "log", [14, 15])
    lh = Lakehouse(tmp_path / "lh")
    first = ingest_search_log(spark, lh, folder, run_id="r1")
    assert (first["read"], first["accepted"], first["quarantined"], first["upserted"]) == (3, 3, 0, 6)
    assert read_watermark(spark, lh) == date(2011, 9, 15)
    events = lh.read_arrow("search_events").to_pylist()
    assert {e["query_norm"] for e in events} == {"gears of war 3", "battlefield 3"}  # NFKC, case, whitespace
    assert lh.read_arrow("ingest_state").to_pylist()[0]["run_id"] == "r1"

    (folder / "clicks-2011-09-16.csv").write_text(HEADER + "".join(DAYS[16]))  # one new day arrives
    v = lh.version("search_events")
    second = ingest_search_log(spark, lh, folder, run_id="r2")
    assert (second["read"], second["accepted"], second["upserted"]) == (2, 2, 4)
    assert second["days"] == ["2011-09-16", "2011-09-16"] and second["watermark"] == "2011-09-16"
    assert lh.version("search_events") == v + 1
    assert len(lh.read_arrow("search_events")) == 10
    logged = {r["run_id"]: (r["read"], r["accepted"], r["quarantined"], r["upserted"]) for r in _log(lh)}
    assert logged == {"r1": (3, 3, 0, 6), "r2": (2, 2, 0, 4)}

    third = ingest_search_log(spark, lh, folder, run_id="r3")  # nothing new: nothing read, nothing written
    assert third["read"] == 0 and lh.version("search_events") == v + 1


def test_backfill_reprocesses_a_range_idempotently(spark, tmp_path):
    folder = _write(tmp_path / "log", [14, 15, 16])
    lh = Lakehouse(tmp_path / "lh")
    ingest_search_log(spark, lh, folder, run_id="r1")
    before, v = _events(lh), lh.version("search_events")
    again = ingest_search_log(spark, lh, folder, run_id="r2", backfill=(date(2011, 9, 14), date(2011, 9, 15)))
    assert (again["read"], again["upserted"]) == (3, 6)
    assert _events(lh) == before  # same rows, no duplicates
    assert lh.version("search_events") == v + 1  # only a new version
    assert read_watermark(spark, lh) == date(2011, 9, 16)  # a backfill never moves the watermark back
    with pytest.raises(ValueError, match="FROM 2011-09-16 is after TO 2011-09-14"):
        ingest_search_log(spark, lh, folder, run_id="r3", backfill=(date(2011, 9, 16), date(2011, 9, 14)))


def test_event_ids_match_the_row_level_adapter(spark, tmp_path):
    folder = _write(tmp_path / "log", [14, 15, 16])
    lh = Lakehouse(tmp_path / "lh")
    ingest_search_log(spark, lh, folder, run_id="r1")
    spark_rows = {(r["event_id"], r["session_id"], r["event_type"], r["ts"], r["query_norm"], r["product_id"],
                   r["event_date"]) for r in lh.read_arrow("search_events").to_pylist()}
    frame = load_bestbuy_small(folder).tables["search_events"]
    adapter_rows = {(r.event_id, r.session_id, r.event_type, r.ts.to_pydatetime(), r.query_norm,
                     r.product_id, r.event_date) for r in frame.itertuples()}
    assert spark_rows == adapter_rows


def test_bad_rows_are_quarantined_with_reasons(spark, tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "train.csv").write_text(
        HEADER + DAYS[14][0]
        + ",9854804,abcat0701002,halo,2011-09-14 12:00:01,2011-09-14 12:00:00\n"  # missing user
        + "u7,,abcat0701002,halo,2011-09-14 12:00:01,2011-09-14 12:00:00\n"  # missing sku
        + "u8,9854804,abcat0701002,halo,2011-09-14 12:00:01,yesterday\n"  # bad time
        + "u9,9854804,abcat0701002,   ,2011-09-14 12:00:01,2011-09-14 12:00:00\n"  # blank query
    )
    lh = Lakehouse(tmp_path / "lh")
    c = ingest_search_log(spark, lh, folder, run_id="r1")
    assert (c["read"], c["accepted"], c["quarantined"]) == (5, 1, 4)
    q = lh.read_arrow("quarantine").to_pylist()
    reasons = sorted(r["reason"] for r in q)
    assert reasons == ["missing sku", "missing user", "query is blank",
                       "query_time yesterday is not a timestamp"]
    assert all(r["run_id"] == "r1" and r["location"].startswith("train.csv:") for r in q)
    log = _log(lh)[0]
    assert log["read"] == log["accepted"] + log["quarantined"] == 5


def test_truncated_gzip_fails_loudly(spark, tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    blob = gzip.compress((HEADER + "".join(DAYS[14]) * 200).encode())
    (folder / "train.csv.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SourceSchemaError, match=r"train\.csv\.gz: truncated or corrupt gzip"):
        ingest_search_log(spark, Lakehouse(tmp_path / "lh"), folder, run_id="r1")
    assert not (tmp_path / "lh").exists()


def test_wrong_delimiter_fails_loudly(spark, tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "train.csv").write_text(HEADER.replace(",", ";") + DAYS[14][0].replace(",", ";"))
    with pytest.raises(SourceSchemaError, match="wrong delimiter"):
        ingest_search_log(spark, Lakehouse(tmp_path / "lh"), folder, run_id="r1")


def test_real_log_sample(spark, data_root, tmp_path):
    """The first 2,000 records of each real Best Buy log file: ids equal to the adapter's."""
    lh = Lakehouse(tmp_path / "lh")
    c = ingest_search_log(spark, lh, data_root / "bestbuy-small", run_id="r1", limit=2000)
    assert c["read"] == c["accepted"] + c["quarantined"] == 6000
    assert c["files"] == ["queries_unlabeled.csv", "test.csv.gz", "train.csv.gz"]
    got = lh.read_arrow("search_events").to_pylist()
    first = next(r for r in got if r["event_type"] == "click" and r["user_id"].startswith("16ef81071616"))
    assert (first["product_id"], first["query_norm"], str(first["event_date"])) == ("9854804", "gears of war 3",
                                                                                   "2011-09-14")
