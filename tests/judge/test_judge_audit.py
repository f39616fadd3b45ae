import pandas as pd

from strata.judge.audit import AuditRules, audit_frame, run_audit
from strata.tables import Lakehouse


def _judgments():
    return pd.DataFrame({
        "source": ["bb"] * 5, "query_norm": ["ipad", "ipad", "tv", "tv", "tv"],
        "product_id": ["a", "b", "c", "d", "e"], "judge_id": ["j@1"] * 5,
        "grade": pd.array([0, 2, 2, 1, 0], dtype="Int64"),
        "p0": [0.9, 0.05, 0.1, 0.2, 0.8], "p2": [0.05, 0.9, 0.8, 0.3, 0.1],
        "status": ["ok"] * 5,
    })


def _engagement():
    return pd.DataFrame({
        "source": ["bb"] * 5, "query_norm": ["ipad", "ipad", "tv", "tv", "tv"],
        "product_id": ["a", "b", "c", "d", "e"],
        "impressions": pd.array([None, 50, 40, 40, None], dtype="Int64"),
        "clicks": pd.array([5, 10, 0, 0, 1], dtype="Int64"),
        "add_to_carts": pd.array([0, 1, 0, 0, None], dtype="Int64"),
        "purchases": pd.array([1, 0, 0, 0, None], dtype="Int64"),
    })


def test_audit_flags_strong_disagreements():
    out = audit_frame(_judgments(), _engagement(), AuditRules(min_clicks=3, min_impressions=20), "r1")
    got = dict(zip(out["product_id"], out["reason"]))
    assert set(got) == {"a", "c"}
    assert got["a"].startswith("irrelevant_but_engaged") and "purchases=1" in got["a"]
    assert got["c"].startswith("exact_but_ignored") and "impressions=40" in got["c"]


def test_run_audit_writes_table(engines, tmp_path):
    lh = Lakehouse(tmp_path / "lh")
    spark = engines.spark
    j = _judgments().assign(query=lambda d: d["query_norm"], judge_version="1", p1=0.1, error=None,
                            run_id="r", judged_at=pd.Timestamp("2026-01-01"))
    lh.write(lh.to_spark(spark, "judgments", j), "judgments")
    lh.write(lh.to_spark(spark, "query_product_engagement", _engagement()), "query_product_engagement")
    res = run_audit(engines, lh, "j@1", AuditRules(), "audit-1")
    assert res["flagged"] == 2 and res["by_reason"] == {"irrelevant_but_engaged": 1, "exact_but_ignored": 1}
    a = lh.read_arrow("judge_audit").to_pandas()
    assert sorted(a["product_id"]) == ["a", "c"] and (a["run_id"] == "audit-1").all()
    run_audit(engines, lh, "j@1", AuditRules(), "audit-2")  # idempotent: MERGE on the keys
    assert len(lh.read_arrow("judge_audit").to_pandas()) == 2


def test_run_audit_reads_one_judges_rows_and_their_queries_only(tmp_path, monkeypatch, forbid_whole_reads):
    """No whole-table read of judgments or engagement (issue 10); same flagged rows as before."""
    from types import SimpleNamespace

    import pyarrow as pa
    from deltalake import write_deltalake

    import strata.ingest.upsert as upsert_mod
    from strata.tables import spec

    lh = Lakehouse(tmp_path / "lh")
    j1 = _judgments()
    j2 = _judgments().assign(judge_id="j@2", grade=pd.array([2, 0, 0, 1, 2], dtype="Int64"), p0=0.5, p2=0.5)
    j2.loc[3, "status"] = "error:timeout"
    j2.loc[3, "grade"] = pd.NA
    j3 = pd.DataFrame({"source": "bb", "query_norm": [f"other {i}" for i in range(30)],
                       "product_id": "z", "judge_id": "j@3", "grade": pd.array([0] * 30, dtype="Int64"),
                       "p0": 0.9, "p2": 0.05, "status": "ok"})
    judged = pd.concat([j1, j2, j3], ignore_index=True).assign(
        query=lambda d: d["query_norm"], judge_version="1", p1=0.1, error=None, run_id="r",
        judged_at=pd.Timestamp("2026-01-01"))
    eng = pd.concat([_engagement(), _engagement().iloc[:2],  # repeated keys are summed
                     pd.DataFrame({"source": "bb", "query_norm": [f"unjudged {i}" for i in range(40)],
                                   "product_id": "a", "impressions": pd.array([9] * 40, dtype="Int64"),
                                   "clicks": pd.array([9] * 40, dtype="Int64"),
                                   "add_to_carts": pd.array([1] * 40, dtype="Int64"),
                                   "purchases": pd.array([1] * 40, dtype="Int64")})], ignore_index=True)
    for name, frame in (("judgments", judged), ("query_product_engagement", eng)):
        table = pa.Table.from_pandas(frame[spec(name).schema.names], schema=spec(name).schema, preserve_index=False)
        for s in range(0, table.num_rows, 12):
            write_deltalake(str(lh.path(name)), table.slice(s, 12), mode="append")

    def old_audit(judge_id):  # run_audit's reads before issue 10: both tables whole
        j = lh.read_arrow("judgments").to_pandas()
        if judge_id:
            j = j[j["judge_id"] == judge_id]
        return audit_frame(j, lh.read_arrow("query_product_engagement").to_pandas(), AuditRules(), "a"), len(j)

    want = {k: old_audit(k) for k in ("j@1", "j@2", None)}
    written: list[pd.DataFrame] = []
    seen = forbid_whole_reads("judgments", "query_product_engagement")
    monkeypatch.setattr(upsert_mod, "upsert", lambda spark, lakehouse, name, frame: written.append(frame))
    engines = SimpleNamespace(spark=None)
    for judge_id, (flags, n) in want.items():
        seen.clear()
        written.clear()
        res = run_audit(engines, lh, judge_id, AuditRules(), "a")
        assert res["judgments"] == n and res["flagged"] == len(flags)
        assert len(written) == 1
        pd.testing.assert_frame_equal(written[0], flags)
        j_rows = sum(r for name, _, r in seen if name == "judgments")
        e_rows = sum(r for name, _, r in seen if name == "query_product_engagement")
        assert j_rows == n and e_rows == 7  # the judged queries' engagement, never the 40 unjudged ones
        assert all("error" not in cols and "query" not in cols for _, cols, _ in seen)
    assert [len(want[k][0]) for k in ("j@1", "j@2", None)] == [2, 1, 3]
