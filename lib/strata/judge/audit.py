"""Engagement audit (Mine and Refine): where the judge and shoppers' behaviour strongly disagree.

Judgments are joined with ``query_product_engagement`` on (query_norm, product_id). Two disagreements are
flagged for re-review by a stronger judge or a person:

* ``irrelevant_but_engaged``: judged 0 yet bought / added to cart at least once, or clicked at least
  ``min_clicks`` times;
* ``exact_but_ignored``: judged 2 yet shown at least ``min_impressions`` times and never clicked (needs a
  log that records impressions; click-only logs have null impressions and never trigger it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from strata.tables import Lakehouse

ENGAGEMENT_COLS = ["impressions", "clicks", "add_to_carts", "purchases"]
# the judgments columns audit_frame reads
JUDGMENT_COLS = ["source", "query_norm", "product_id", "judge_id", "grade", "p0", "p2", "status"]


@dataclass(frozen=True)
class AuditRules:
    min_clicks: int = 3
    min_impressions: int = 20
    irrelevant_max_p2: float = 1.0  # optionally flag only confident 0s (P(exact) below this)


def audit_frame(judgments: pd.DataFrame, engagement: pd.DataFrame, rules: AuditRules = AuditRules(),
                run_id: str = "") -> pd.DataFrame:
    """The audit rows (``judge_audit`` schema) for judgments that disagree with engagement."""
    j = judgments[judgments["status"].isin(["ok", "truncated"]) & judgments["grade"].notna()]
    eng = engagement.groupby(["query_norm", "product_id"], as_index=False, dropna=False)[ENGAGEMENT_COLS].sum(
        min_count=1)
    m = j.merge(eng, on=["query_norm", "product_id"], how="inner")
    if m.empty:
        return _empty()
    clicks = m["clicks"].fillna(0)
    carts = m["add_to_carts"].fillna(0)
    buys = m["purchases"].fillna(0)
    imps = m["impressions"]
    g = m["grade"].astype(int)
    irr = (g == 0) & (m["p2"].fillna(0) <= rules.irrelevant_max_p2) & (
        (buys >= 1) | (carts >= 1) | (clicks >= rules.min_clicks))
    ign = (g == 2) & imps.notna() & (imps.fillna(0) >= rules.min_impressions) & (clicks == 0)
    out = m[irr | ign].copy()
    if out.empty:
        return _empty()
    reasons = []
    for _, r in out.iterrows():
        if int(r["grade"]) == 0:
            reasons.append(
                f"irrelevant_but_engaged: judged 0 (p0={r['p0']:.2f}) but clicks={_n(r['clicks'])}, "
                f"add_to_carts={_n(r['add_to_carts'])}, purchases={_n(r['purchases'])}")
        else:
            reasons.append(
                f"exact_but_ignored: judged 2 (p2={r['p2']:.2f}) but impressions={_n(r['impressions'])}, clicks=0")
    out["reason"] = reasons
    out["run_id"] = run_id
    for c in ENGAGEMENT_COLS:
        out[c] = out[c].astype("Int64")
    out["grade"] = out["grade"].astype("Int64")
    cols = ["source", "query_norm", "product_id", "judge_id", "grade", "p2", *ENGAGEMENT_COLS, "reason", "run_id"]
    return out[cols].drop_duplicates(subset=["query_norm", "product_id", "judge_id"]).reset_index(drop=True)


def _n(x) -> str:
    return "null" if pd.isna(x) else str(int(x))


def _empty() -> pd.DataFrame:
    from strata.tables import empty_frame

    return empty_frame("judge_audit")


def run_audit(engines, lakehouse: Lakehouse, judge_id: str | None = None, rules: AuditRules = AuditRules(),
              run_id: str = "") -> dict:
    """Audit judgments (of one judge id, or all) against engagement; MERGE flagged rows into judge_audit."""
    import pyarrow.compute as pc

    from strata.ingest.upsert import upsert

    for name in ("judgments", "query_product_engagement"):
        if not lakehouse.exists(name):
            raise FileNotFoundError(f"table {name!r} is missing from {lakehouse.root}")
    # Only the columns audit_frame uses; judgments of the audited judge only; engagement of the judged
    # queries only (the inner join drops every other row). Both pushed down to the scan.
    j = lakehouse.scan_frame("judgments", JUDGMENT_COLS, (pc.field("judge_id") == judge_id) if judge_id else None)
    queries = pa.array(pd.unique(j["query_norm"]), type=pa.string(), from_pandas=True)
    eng = lakehouse.scan_frame("query_product_engagement", ["query_norm", "product_id", *ENGAGEMENT_COLS],
                               pc.field("query_norm").isin(queries))
    flagged = audit_frame(j, eng, rules, run_id)
    if len(flagged):
        upsert(engines.spark, lakehouse, "judge_audit", flagged)
    kinds = flagged["reason"].str.split(":").str[0].value_counts().to_dict() if len(flagged) else {}
    return {"judgments": int(len(j)), "flagged": int(len(flagged)), "by_reason": kinds, "run_id": run_id}
