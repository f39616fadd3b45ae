"""The false-negative guard: a mined "negative" may be a relevant product nobody labelled.

With a judge, every mined candidate is re-annotated: grade 1 or 2 turns it into a graded positive
(``source = judge``, the route kept in ``mined_from``), grade 0 keeps it a negative with the judge's
verdict attached, and a row the judge could not score is dropped (counted). Without a judge, the margin
rule of sentence-transformers' ``mine_hard_negatives`` applies: a candidate whose cosine to the query is
above ``positive_score - absolute_margin`` or above ``positive_score - |positive_score| * relative_margin``
is too close to the query's weakest positive to trust as a negative and is dropped. (Unlike
``mine_hard_negatives``, the rank window is applied before this rule, so a query can keep fewer than
``n_ann`` ANN rows.) Every rule's removals are counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strata.mine.config import MineConfig


def margin_rule(cands: pd.DataFrame, cfg: MineConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop candidates too close to the positive (needs ``score`` and ``positive_score`` columns)."""
    keep = np.ones(len(cands), dtype=bool)
    removed: dict[str, int] = {}
    s = cands["score"].to_numpy(dtype=float)
    p = cands["positive_score"].to_numpy(dtype=float)
    known = np.isfinite(s) & np.isfinite(p)
    if cfg.absolute_margin is not None:
        hit = known & (s > p - cfg.absolute_margin)
        removed["absolute_margin"] = int((hit & keep).sum())
        keep &= ~hit
    if cfg.relative_margin is not None:
        hit = known & (s > p - np.abs(p) * cfg.relative_margin)  # |p|: a negative positive score stays sane
        removed["relative_margin"] = int((hit & keep).sum())
        keep &= ~hit
    return cands[keep].reset_index(drop=True), removed


def apply_judgments(cands: pd.DataFrame, judged: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Attach the judge's verdict (``judged``: query_norm, product_id, grade, p2, judge_id, status) to the
    candidates; judge-positive candidates become ``source = judge`` rows with the judge's grade."""
    j = judged[["query_norm", "product_id", "grade", "p2", "judge_id", "status"]].rename(
        columns={"grade": "judge_grade", "p2": "judge_p2"})
    merged = cands.merge(j, on=["query_norm", "product_id"], how="left")
    scored = merged["status"].isin(["ok", "truncated"]) & merged["judge_grade"].notna()
    out = merged[scored].copy()
    out["judge_grade"] = out["judge_grade"].astype(int)
    positive = out["judge_grade"] >= 1
    out["mined_from"] = out["route"]
    out["grade"] = np.where(positive, out["judge_grade"], 0).astype(int)
    out["source"] = np.where(positive, "judge", out["route"])
    stats = {
        "judged": int(scored.sum()),
        "unjudged_dropped": int((~scored).sum()),
        "judge_positive": int(positive.sum()),
        "judge_positive_by_route": {k: int(v) for k, v in out[positive].groupby("route").size().items()},
    }
    return out.drop(columns=["status"]).reset_index(drop=True), stats
