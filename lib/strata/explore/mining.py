"""``training_examples`` (``strata mine run``) for a notebook: the per-source table, the similarity-to-query
distribution per source, and the query to look at first.

Sources (``training_examples.source``): ``human`` / ``engagement`` are the seeds (graded positives and
labelled negatives), ``judge`` a mined candidate the judge turned into a positive, and the mining routes
(``ann``, ``attribute_flip``, ``taxonomy_sibling``, ``cousin``, ``random``) the negatives. ``score`` is the
cosine of the query and the product under the mining encoder: the hard routes should sit above ``random``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from strata.explore.plots import _plt
from strata.mine.config import ROUTES
from strata.mine.job import SOURCE_PRIORITY

SEED_SOURCES = ("human", "engagement")
HARD_ROUTES = tuple(r for r in ROUTES if r != "random")
_KIND_COLORS = {"seed": "#55a868", "judge": "#8172b3", "mined": "#dd8452", "random": "#8c8c8c", "other": "#4c72b0"}
EXAMPLE_COLUMNS = ["source", "grade", "score", "positive_score", "margin", "rank", "mined_from", "judge_grade",
                   "judge_p2", "product_id", "title"]


def source_kind(source: str) -> str:
    """seed (human / engagement), judge, mined (a hard route), random, or other."""
    if source in SEED_SOURCES:
        return "seed"
    if source == "judge":
        return "judge"
    if source == "random":
        return "random"
    return "mined" if source in HARD_ROUTES else "other"


def _order(sources) -> list[str]:
    prio = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    return sorted(sources, key=lambda s: (prio.get(s, len(prio)), s))


def source_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per source of a ``summarize`` dict (``mining_report(lh)["overall"]``), in the cap's priority
    order: rows, share, grade counts, judge grades, mean / median similarity to the query."""
    cols = ["source", "kind", "rows", "share", "grade_0", "grade_1", "grade_2", "judge_graded", "mean_score",
            "median_score"]
    rows = []
    srcs = summary.get("sources", {})
    for src in _order(srcs):
        s = srcs[src]
        grades = {int(k): v for k, v in s.get("grades", {}).items()}
        rows.append({"source": src, "kind": source_kind(src), "rows": s["rows"], "share": s["share"],
                     **{f"grade_{g}": int(grades.get(g, 0)) for g in (0, 1, 2)},
                     "judge_graded": int(sum(s.get("judge_grades", {}).values())),
                     "mean_score": s.get("mean_score"), "median_score": s.get("median_score")})
    return pd.DataFrame(rows, columns=cols)


def catalog_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """Per catalog of a ``mining_report``: rows, queries, rows per query and the share of each source."""
    rows = []
    for cat, s in report.get("catalogs", {}).items():
        r = {"catalog": cat, "rows": s["rows"], "queries": s["queries"],
             "rows_per_query": round(s["rows"] / max(s["queries"], 1), 2)}
        r.update({src: v["share"] for src, v in s.get("sources", {}).items()})
        rows.append(r)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["catalog", "rows", "queries", "rows_per_query"])
    fixed = ["catalog", "rows", "queries", "rows_per_query"]
    return df[fixed + _order([c for c in df.columns if c not in fixed])].fillna(0.0)


def grade_distribution(examples: pd.DataFrame) -> pd.DataFrame:
    """Rows per grade (0 irrelevant, 1 partial, 2 exact) and their share, over all sources."""
    counts = examples["grade"].astype(int).value_counts().reindex([0, 1, 2], fill_value=0)
    return pd.DataFrame({"grade": [0, 1, 2], "rows": counts.to_numpy(),
                         "share": (counts / max(len(examples), 1)).round(4).to_numpy()})


def similarity_by_source(examples: pd.DataFrame) -> pd.DataFrame:
    """Per source: how many rows have a similarity, and its mean, 10th / 50th / 90th percentile."""
    cols = ["source", "kind", "n", "mean", "p10", "median", "p90"]
    rows = []
    for src in _order(examples["source"].unique()):
        s = pd.to_numeric(examples.loc[examples["source"] == src, "score"], errors="coerce").dropna()
        if s.empty:
            rows.append({"source": src, "kind": source_kind(src), "n": 0})
            continue
        rows.append({"source": src, "kind": source_kind(src), "n": int(len(s)), "mean": float(s.mean()),
                     "p10": float(s.quantile(0.1)), "median": float(s.median()), "p90": float(s.quantile(0.9))})
    return pd.DataFrame(rows, columns=cols)


def mined_minus_random(examples: pd.DataFrame) -> float | None:
    """Median similarity of the hard-route negatives minus that of the random negatives (None if either
    is missing): above 0 means mining found harder negatives than chance."""
    score = pd.to_numeric(examples["score"], errors="coerce")
    neg = examples["grade"].astype(int) == 0
    hard = score[neg & examples["source"].isin(HARD_ROUTES)].dropna()
    rand = score[neg & (examples["source"] == "random")].dropna()
    if hard.empty or rand.empty:
        return None
    return round(float(hard.median() - rand.median()), 4)


def top_query(examples: pd.DataFrame, catalog: str | None = None) -> tuple[str, str] | None:
    """(catalog, query_norm) of the query with the most mined rows (any source but the seeds); ties by
    total rows, then name. None when there is no mined row."""
    ex = examples if not catalog else examples[examples["catalog"] == catalog]
    mined = ex[~ex["source"].isin(SEED_SOURCES)]
    if mined.empty:
        return None
    n = mined.groupby(["catalog", "query_norm"]).size().rename("mined").to_frame()
    n["total"] = ex.groupby(["catalog", "query_norm"]).size().reindex(n.index)
    n = n.reset_index().sort_values(["mined", "total", "catalog", "query_norm"],
                                    ascending=[False, False, True, True])
    r = n.iloc[0]
    return str(r["catalog"]), str(r["query_norm"])


def example_view(rows: pd.DataFrame) -> pd.DataFrame:
    """One query's examples (``strata.mine.inspect.query_examples``) with the columns worth reading and the
    margin to the query's best positive (``positive_score - score``)."""
    df = rows.copy()
    if "title" not in df:
        df["title"] = None
    df["margin"] = pd.to_numeric(df.get("positive_score"), errors="coerce") - pd.to_numeric(df.get("score"),
                                                                                              errors="coerce")
    return df[[c for c in EXAMPLE_COLUMNS if c in df.columns]].reset_index(drop=True)


# ---------------------------------------------------------------- plots


def similarity_plot(examples: pd.DataFrame):
    """Box plot of the similarity to the query per source (seeds green, hard routes orange, random grey),
    with the random median as a dashed line."""
    plt = _plt()
    srcs = [s for s in _order(examples["source"].unique())
            if pd.to_numeric(examples.loc[examples["source"] == s, "score"], errors="coerce").notna().any()]
    data = [pd.to_numeric(examples.loc[examples["source"] == s, "score"], errors="coerce").dropna().to_numpy()
            for s in srcs]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    if data:
        bp = ax.boxplot(data, showfliers=False, patch_artist=True)
        for patch, s in zip(bp["boxes"], srcs):
            patch.set_facecolor(_KIND_COLORS[source_kind(s)])
            patch.set_alpha(0.8)
        ax.set_xticks(range(1, len(srcs) + 1), [f"{s}\n(n={len(d)})" for s, d in zip(srcs, data)], fontsize=8)
        if "random" in srcs:
            ax.axhline(float(np.median(data[srcs.index("random")])), color="#555", ls="--", lw=1,
                       label="random median")
            ax.legend(fontsize=8)
    ax.set_ylabel("cosine(query, product)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Similarity to the query per source (mined routes should sit above random)", fontsize=10)
    fig.tight_layout()
    return fig


def grade_plot(table: pd.DataFrame):
    """Stacked bars of rows by grade per source (``source_table``)."""
    from strata.judge.protocol import GRADE_NAMES

    plt = _plt()
    colors = {0: "#c44e52", 1: "#dd8452", 2: "#55a868"}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bottom = np.zeros(len(table))
    for g in (0, 1, 2):
        v = table[f"grade_{g}"].to_numpy(dtype=float)
        ax.bar(table["source"], v, bottom=bottom, color=colors[g], label=f"{g} {GRADE_NAMES[g]}")
        bottom += v
    ax.set_ylabel("rows")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Training examples by source and grade", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def query_plot(view: pd.DataFrame, query: str):
    """One query's examples as horizontal bars of similarity, coloured by source kind; the best positive's
    similarity as a dashed line."""
    plt = _plt()
    v = view.copy()
    v["score"] = pd.to_numeric(v["score"], errors="coerce")
    v = v[v["score"].notna()]
    fig, ax = plt.subplots(figsize=(7.5, 0.22 * max(len(v), 4) + 1.0))
    labels = [f"{'+' if g >= 1 else '-'} {s}: {str(t or p)[:45]}"
              for g, s, t, p in zip(v["grade"], v["source"], v["title"], v["product_id"])]
    y = np.arange(len(v))[::-1]
    ax.barh(y, v["score"], color=[_KIND_COLORS[source_kind(s)] for s in v["source"]])
    ax.set_yticks(y, labels, fontsize=7)
    pos = pd.to_numeric(view.get("positive_score"), errors="coerce").dropna()
    if len(pos):
        ax.axvline(float(pos.max()), color="black", ls="--", lw=1, label="best positive")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("cosine(query, product)")
    ax.set_title(f"Examples of {query!r}", fontsize=10)
    fig.tight_layout()
    return fig
