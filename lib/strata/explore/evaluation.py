"""An evaluation run directory (``strata run`` / ``analyze_run_dir``) as tables for a notebook: metrics,
significance against the reference, slices, and the queries where two retrievers differ most."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def metric_frame(analysis: Mapping[str, Any]) -> pd.DataFrame:
    """Retrievers x metrics (in the report's order) with the number of queries scored."""
    order = list(analysis.get("metrics_order", []))
    rows = []
    for name, m in analysis.get("retrievers", {}).items():
        rows.append({"retriever": name, **{k: m.get(k) for k in order}, "num_queries": m.get("num_queries")})
    return pd.DataFrame(rows, columns=["retriever", *order, "num_queries"]).set_index("retriever")


def comparison_frame(analysis: Mapping[str, Any], metric: str | None = None) -> pd.DataFrame:
    """Each retriever against the reference on ``metric`` (default the primary): means, diff, 95% CI, p."""
    metric = metric or analysis.get("primary_metric", "ndcg@10")
    cols = ["retriever", "reference", "metric", "mean_reference", "mean", "diff", "ci_low", "ci_high", "p_value",
            "significant"]
    rows = []
    for name, comps in analysis.get("comparisons", {}).items():
        c = comps.get(metric)
        if not c:
            continue
        rows.append({"retriever": name, "reference": analysis.get("reference"), "metric": metric,
                     "mean_reference": c["mean_a"], "mean": c["mean_b"], "diff": c["diff"],
                     "ci_low": c["ci_low"], "ci_high": c["ci_high"], "p_value": c["p_value"],
                     "significant": bool(c["ci_low"] > 0 or c["ci_high"] < 0)})
    return pd.DataFrame(rows, columns=cols)


def slice_frame(analysis: Mapping[str, Any], metric: str | None = None) -> pd.DataFrame:
    """Long table: slice family, slice, queries, then one column per retriever with ``metric``."""
    metric = metric or analysis.get("primary_metric", "ndcg@10")
    by_ret = analysis.get("slices", {}).get("by_retriever", {})
    rows: dict[tuple[str, str], dict] = {}
    for name, fams in by_ret.items():
        for fam, slices in fams.items():
            for s, m in slices.items():
                r = rows.setdefault((fam, s), {"family": fam, "slice": s, "num_queries": m.get("num_queries")})
                r[name] = m.get(metric)
    return pd.DataFrame(list(rows.values()), columns=["family", "slice", "num_queries", *by_ret])


def query_deltas(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], a: str, b: str,
                 metric: str = "ndcg@10", queries: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per query: ``metric`` of retriever ``a`` and ``b`` and ``b - a``, sorted by the difference (largest
    loss of ``b`` first); ``queries`` maps query id -> text."""
    pa_, pb = per_query[a][metric], per_query[b][metric]
    ids = sorted(set(pa_) & set(pb))
    df = pd.DataFrame({"query_id": ids, a: [pa_[q] for q in ids], b: [pb[q] for q in ids]})
    df["diff"] = df[b] - df[a]
    if queries is not None:
        df.insert(1, "query", [queries.get(q) for q in ids])
    return df.sort_values(["diff", "query_id"]).reset_index(drop=True)


def run_queries(run_dir: str | Path) -> dict[str, str]:
    """Query id -> text of the run's dev set (``beir/<dataset>/queries.jsonl``)."""
    from strata.evaluate.analysis import load_run_dir

    _, ds, _ = load_run_dir(run_dir)
    return dict(ds.queries)


def find_run(run_dir: str | Path | None = None, roots: tuple[str, ...] = ("runs", "../runs")) -> Path:
    """``run_dir`` when given, else the newest finished run (a folder with metrics.json) under ``roots``
    (relative to the working directory: the repo root or ``notebooks/``)."""
    if run_dir:
        p = Path(run_dir).expanduser()
        if not (p / "metrics.json").is_file():
            raise FileNotFoundError(f"{p}: no metrics.json (is this a finished `strata run` directory?)")
        return p.resolve()
    found = [m.parent for r in roots if Path(r).is_dir() for m in Path(r).glob("*/metrics.json")]
    if not found:
        raise FileNotFoundError(f"no finished run under {', '.join(roots)}; pass run_dir (run `strata run` first)")
    return max(found, key=lambda p: (p / "metrics.json").stat().st_mtime).resolve()


def find_lakehouse(lakehouse: str | Path | None = None, roots: tuple[str, ...] = ("runs", "../runs")) -> Path:
    """``lakehouse`` when given, else the newest run's ``lakehouse/`` folder."""
    if lakehouse:
        p = Path(lakehouse).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"lakehouse {p} does not exist")
        return p.resolve()
    found = [d.parent for r in roots if Path(r).is_dir() for d in Path(r).glob("*/lakehouse/labels")]
    if not found:
        raise FileNotFoundError(f"no lakehouse under {', '.join(roots)}/*/; pass lakehouse")
    return max(found, key=lambda p: p.stat().st_mtime).resolve()
