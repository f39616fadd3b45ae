"""The mining report: per source (overall and per catalog) rows, share, grade and judge-grade distributions
and similarity to the query, of ``training_examples`` (``mining_report``) or of any examples frame
(``summarize``). The table is streamed in record batches (``Lakehouse.scan_batches``), never read whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.tables import Lakehouse


class _SourceTally:
    """Counts and scores of one (catalog or overall, source) while ``training_examples`` streams past. Only
    the scores are kept (for the exact median): 8 bytes a row instead of the whole row."""

    def __init__(self) -> None:
        self.rows = 0
        self.grades: dict[int, int] = {}
        self.judge_grades: dict[int, int] = {}
        self.scores: list[np.ndarray] = []

    def add(self, g: pd.DataFrame) -> None:
        self.rows += len(g)
        for k, v in g["grade"].value_counts().items():
            self.grades[int(k)] = self.grades.get(int(k), 0) + int(v)
        for k, v in g["judge_grade"].dropna().astype(int).value_counts().items():
            self.judge_grades[int(k)] = self.judge_grades.get(int(k), 0) + int(v)
        sc = pd.to_numeric(g["score"], errors="coerce").dropna().to_numpy(np.float64)
        if len(sc):
            self.scores.append(sc)

    def summary(self, total: int) -> dict[str, Any]:
        sc = np.concatenate(self.scores) if self.scores else np.array([])
        return {"rows": self.rows, "share": round(self.rows / max(total, 1), 4),
                "grades": dict(sorted(self.grades.items())), "judge_grades": dict(sorted(self.judge_grades.items())),
                "mean_score": round(float(sc.mean()), 4) if len(sc) else None,
                "median_score": round(float(np.median(sc)), 4) if len(sc) else None}


def summarize(examples: pd.DataFrame) -> dict[str, Any]:
    """Per source: rows, share, grade distribution, judge grade distribution, similarity to the query."""
    tallies: dict[str, _SourceTally] = {}
    for src, g in examples.groupby("source", sort=True):
        tallies.setdefault(src, _SourceTally()).add(g)
    return {"rows": int(len(examples)), "queries": int(examples["query_norm"].nunique()),
            "sources": {src: t.summary(len(examples)) for src, t in tallies.items()}}


REPORT_COLUMNS = ["catalog", "query_norm", "source", "grade", "judge_grade", "score"]


def mining_report(lakehouse: Lakehouse, out: str | Path | None = None) -> dict[str, Any]:
    """``summarize`` of the current ``training_examples`` (per catalog and overall), optionally as JSON.

    Streams the six columns it needs in record batches (``Lakehouse.scan_batches``) and tallies as it goes: the
    driver holds the distinct query keys and one float64 score per row (twice: per catalog and overall), never
    the table's text columns; the result equals ``summarize`` over the whole table."""
    tallies: dict[str | None, dict[str, _SourceTally]] = {None: {}}
    queries: dict[str | None, set[str]] = {None: set()}
    for batch in lakehouse.scan_batches("training_examples", REPORT_COLUMNS):
        df = batch.to_pandas()
        for cat, cg in df.groupby("catalog", sort=False):
            queries.setdefault(cat, set()).update(cg["query_norm"].dropna())
            queries[None].update(cg["query_norm"].dropna())
            for src, g in cg.groupby("source", sort=False):
                for key in (cat, None):
                    tallies.setdefault(key, {}).setdefault(src, _SourceTally()).add(g)

    def part(key: str | None) -> dict[str, Any]:
        by = tallies.get(key, {})
        total = sum(t.rows for t in by.values())
        return {"rows": total, "queries": len(queries.get(key, ())),
                "sources": {src: by[src].summary(total) for src in sorted(by)}}

    rep = {"overall": part(None), "catalogs": {c: part(c) for c in sorted(k for k in tallies if k is not None)}}
    if out:
        Path(out).write_text(json.dumps(rep, indent=2))
    return rep
