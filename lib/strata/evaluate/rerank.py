"""Two-stage retrieval in evaluation: a first-stage run re-ranked by the judge (``rerank:BASE``).

Why: the distilled judge is a cross-encoder. It reads query and title together, so it orders a query's top
candidates better than a bi-encoder can (BENCHMARKS.md, "judge re-rank"). That is the usual production
shape: a cheap retriever for recall, then a re-ranker over its top K. ``rerank:BASE`` takes any retriever's
run (``bm25``, a model dir, ``hybrid:...``), scores each query's top ``k`` with the judge's expected grade
(p(partial) + 2 p(exact)) and orders them by

    fused(d) = z(base score of d) + alpha * z(expected grade of d)

with z-scores taken over the query's top ``k`` (the two scales need no calibration). ``alpha = None`` orders
by the expected grade alone. Ranks below ``k`` keep the base order, below the re-ranked ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from strata.evaluate.metrics import strict_ranking

RERANK = "rerank"

# (queries, product texts) -> expected grades in [0, 2], one per pair
Scorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]


class RerankConfig(BaseModel):
    """The judge and how much of the base run it re-orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: str = Field(..., description="distilled judge folder (strata judge train)")
    k: int = Field(20, ge=2, description="top candidates per query the judge scores")
    alpha: float | None = Field(1.0, ge=0, description="weight of the judge's z-score; None = judge order only")
    batch_size: int = Field(64, ge=1)


def rerank_base(name: str) -> str | None:
    """The base retriever of a ``rerank:BASE`` name, or None if ``name`` is not a re-ranker."""
    if not name.startswith(RERANK + ":"):
        return None
    base = name[len(RERANK) + 1:]
    if not base:
        raise ValueError(f"{name!r}: name the run to re-rank, e.g. rerank:bm25 or rerank:MODEL_DIR")
    return base


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def rerank_run(run: Mapping[str, Mapping[str, float]], queries: Mapping[str, str],
               doc_text: Callable[[str], str], scorer: Scorer, k: int, alpha: float | None
               ) -> dict[str, dict[str, float]]:
    """Re-order each query's top ``k`` of ``run`` by the fused score; the judge is called once for all pairs."""
    tops = {q: strict_ranking(run[q])[:k] for q in run}
    keys = [(q, d) for q, top in tops.items() for d, _ in top]
    if not keys:
        return {q: dict(r) for q, r in run.items()}
    grades = np.asarray(scorer([queries[q] for q, _ in keys], [doc_text(d) for _, d in keys]), dtype=np.float64)
    if grades.shape != (len(keys),):
        raise ValueError(f"scorer returned shape {grades.shape} for {len(keys)} pairs")
    out: dict[str, dict[str, float]] = {}
    i = 0
    for q, top in tops.items():
        g = grades[i:i + len(top)]
        i += len(top)
        base = np.array([s for _, s in top], dtype=np.float64)
        fused = g if alpha is None else _z(base) + alpha * _z(g)
        # re-ranked docs sit above the rest: shift them past the highest score left below
        order = sorted(range(len(top)), key=lambda j: (-fused[j], j))  # ties keep the base order
        rest = strict_ranking(run[q])[k:]
        n = len(top)
        out[q] = {top[j][0]: float(len(rest) + n - r) for r, j in enumerate(order)}
        out[q].update({d: float(len(rest) - r) for r, (d, _) in enumerate(rest)})
    return out


def judge_scorer(cfg: RerankConfig) -> Scorer:
    """The distilled judge's expected grade as a scorer (the judge is loaded once)."""
    from strata.judge.model import DistilledJudge

    judge = DistilledJudge(cfg.judge, batch_size=cfg.batch_size)

    def score(queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        p = judge.predict_proba(list(queries), list(texts))
        return p[:, 1] + 2 * p[:, 2]

    score.judge_id = judge.judge_id  # type: ignore[attr-defined]
    return score
