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
