"""Judge calibration in a notebook: one judge's judgments joined with the human labels, the calibration
report (``strata.judge.calibrate``), the worst disagreements, and the engagement audit
(``strata.judge.audit``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strata.catalogs import catalog_of
from strata.judge.audit import AuditRules, audit_frame
from strata.judge.calibrate import calibration_report
from strata.judge.protocol import GRADE_NAMES, SCORED
from strata.tables import Lakehouse

def judges(judgments: pd.DataFrame) -> pd.DataFrame:
    """Judge ids in the judgments table with their row counts, scored share and last run, most rows first."""
    cols = ["judge_id", "judge_version", "rows", "scored_share", "last_run"]
    if judgments.empty:
        return pd.DataFrame(columns=cols)
    j = judgments.assign(_ok=judgments["status"].isin(SCORED))
    g = j.groupby(["judge_id", "judge_version"], as_index=False, dropna=False).agg(
        rows=("product_id", "size"), scored_share=("_ok", "mean"), last_run=("run_id", "max"))
    return g.sort_values(["rows", "judge_id"], ascending=[False, True])[cols].reset_index(drop=True)


def pick_judge(judgments: pd.DataFrame, judge_id: str | None = None) -> str | None:
    """``judge_id`` when given (checked), else the judge with the most judgments."""
    ids = judges(judgments)
    if judge_id:
        if judge_id not in set(ids["judge_id"]):
            raise ValueError(f"judge {judge_id!r} has no judgments; known: {', '.join(ids['judge_id'])}")
        return judge_id
    return None if ids.empty else str(ids["judge_id"].iloc[0])


def judged_pairs(judgments: pd.DataFrame, labels: pd.DataFrame, judge_id: str,
                 split: str | None = None) -> pd.DataFrame:
    """Scored judgments of ``judge_id`` that have a human grade: query, product, human, judge grade, p0..p2.

    Joined on (query_norm, product_id); when both sides carry a source, the sources must agree.
    """
    j = judgments[(judgments["judge_id"] == judge_id) & judgments["status"].isin(SCORED)
                  & judgments["grade"].notna()]
    lab = labels if split is None else labels[labels["split"] == split]
    lab = lab[["source", "query_norm", "product_id", "grade", "split"]].rename(
        columns={"grade": "human", "source": "label_source"})
    m = j.merge(lab, on=["query_norm", "product_id"], how="inner")
    same = m["source"].isna() | m["label_source"].isna() | (m["source"] == m["label_source"])
    m = m[same].drop_duplicates(subset=["query_norm", "product_id"], keep="first")
    out = m.rename(columns={"grade": "judge"})
    out["human"] = out["human"].astype(int)
    out["judge"] = out["judge"].astype(int)
    cols = ["label_source", "split", "query", "query_norm", "product_id", "human", "judge", "p0", "p1", "p2"]
    return out[cols].rename(columns={"label_source": "source"}).reset_index(drop=True)


def calibration(pairs: pd.DataFrame, meta: dict | None = None) -> dict:
    """``strata.judge.calibrate.calibration_report`` on joined pairs (majority baseline from the same labels)."""
    probs = pairs[["p0", "p1", "p2"]].to_numpy(dtype=np.float64) if len(pairs) else None
    if probs is not None and np.isnan(probs).any():
        probs = None
    return calibration_report(pairs["human"].to_numpy(), pairs["judge"].to_numpy(), probs, meta=meta)


def confusion_frame(report: dict, normalise: bool = False) -> pd.DataFrame:
    """The judge's confusion matrix as a labelled frame (rows: human grade, columns: judge grade)."""
    cm = np.asarray(report["judge"]["confusion"], dtype=np.float64)
    if normalise:
        cm = cm / np.where(cm.sum(1, keepdims=True) > 0, cm.sum(1, keepdims=True), 1)
    names = [f"{g} {GRADE_NAMES[g]}" for g in range(3)]
    df = pd.DataFrame(cm if normalise else cm.astype(int), index=names, columns=names)
    df.index.name, df.columns.name = "human", "judge"
    return df


def disagreements(pairs: pd.DataFrame, products: pd.DataFrame | None = None, n: int = 20,
                  min_gap: int = 2) -> pd.DataFrame:
    """Pairs where judge and human differ by at least ``min_gap`` grades, the judge's most confident first
    (confidence = its probability for the grade it gave), with the product title when ``products`` given."""
    d = pairs[(pairs["human"] - pairs["judge"]).abs() >= min_gap].copy()
    if d.empty:
        return d.assign(confidence=pd.Series(dtype=float), title=pd.Series(dtype=object))
    probs = d[["p0", "p1", "p2"]].to_numpy(dtype=np.float64)
    d["confidence"] = probs[np.arange(len(d)), d["judge"].to_numpy()]
    if products is not None and not products.empty:
        p = products.assign(_cat=products["source"])[["_cat", "product_id", "title"]]
        d["_cat"] = d["source"].map(catalog_of)
        d = d.merge(p.drop_duplicates(["_cat", "product_id"]), on=["_cat", "product_id"], how="left").drop(
            columns="_cat")
    else:
        d["title"] = None
    d = d.sort_values(["confidence", "query_norm"], ascending=[False, True])
    return d[["source", "query", "product_id", "title", "human", "judge", "confidence"]].head(n).reset_index(
        drop=True)


def audit_table(lakehouse: Lakehouse, judge_id: str | None = None, rules: AuditRules = AuditRules()
                ) -> tuple[pd.DataFrame, str]:
    """(audit rows, where from): the stored ``judge_audit`` table when it has rows for this judge, else the
    same rule computed now (``audit_frame``) without writing anything; ("", empty) without engagement."""
    from strata.explore.tour import read

    if lakehouse.exists("judge_audit"):
        a = read(lakehouse, "judge_audit")
        if judge_id:
            a = a[a["judge_id"] == judge_id]
        if len(a):
            return a.reset_index(drop=True), "judge_audit table"
    if not (lakehouse.exists("judgments") and lakehouse.exists("query_product_engagement")):
        return read(lakehouse, "judge_audit").iloc[0:0], "not available (no judgments or engagement table)"
    j = read(lakehouse, "judgments")
    if judge_id:
        j = j[j["judge_id"] == judge_id]
    return audit_frame(j, read(lakehouse, "query_product_engagement"), rules), "computed now (not stored)"


def audit_reasons(audit: pd.DataFrame) -> pd.DataFrame:
    if audit.empty:
        return pd.DataFrame(columns=["reason", "rows"])
    kinds = audit["reason"].str.split(":").str[0]
    return kinds.value_counts().rename_axis("reason").reset_index(name="rows")
