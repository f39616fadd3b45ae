"""Hybrid retrieval by reciprocal-rank fusion (RRF) of runs already computed (no re-indexing).

``score(d) = sum over runs of 1 / (k + rank_run(d))`` with ``k = 60`` (Cormack et al., 2009), ranks from
each run's ``strict_ranking`` order, so fusion is deterministic. A document absent from a run adds 0.
``hybrid`` = bm25 + baseline; ``hybrid:a+b+...`` fuses any named runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from strata.evaluate.metrics import strict_ranking

HYBRID = "hybrid"
DEFAULT_COMPONENTS = ("bm25", "baseline")
RRF_K = 60


def hybrid_components(name: str) -> tuple[str, ...] | None:
    """Component runs of a hybrid retriever name, or None if ``name`` is not a hybrid."""
    if name == HYBRID:
        return DEFAULT_COMPONENTS
    if name.startswith(HYBRID + ":"):
        parts = tuple(p for p in name[len(HYBRID) + 1 :].split("+") if p)
        if len(parts) < 2:
            raise ValueError(f"{name!r}: a hybrid needs at least two runs, e.g. hybrid:bm25+baseline")
        return parts
    return None


def rrf(
    runs: list[Mapping[str, Mapping[str, float]]], k: int = RRF_K, depth: int | None = None
) -> dict[str, dict[str, float]]:
    """Reciprocal-rank fusion of ``runs``; keeps the best ``depth`` documents per query (all if None)."""
    out: dict[str, dict[str, float]] = {}
    for qid in sorted({q for r in runs for q in r}):
        fused: dict[str, float] = {}
        for r in runs:
            for rank, (doc, _) in enumerate(strict_ranking(r.get(qid, {})), 1):
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
        ranked = strict_ranking(fused)
        if depth is not None:
            ranked = ranked[:depth]
        out[qid] = dict(ranked)
    return out
