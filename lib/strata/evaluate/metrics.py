"""Scoring runs against graded qrels with ranx, and writing runs as TREC files.

ranx's ``ndcg`` is the Järvelin-Kekäläinen form: gain = the qrel grade (2 exact, 1 partial), discount
log2(rank + 1), normalised by the ideal ordering of the same judgments. ``recall`` and ``mrr`` count
grade >= 1 as relevant. Queries averaged over are every query with at least one judgment, as plain ranx
and pytrec_eval do: a query whose judged products are all irrelevant scores 0 for every system (it is
reported separately as ``num_queries_with_relevant``), and a query the retriever returned nothing for scores
0 rather than disappearing from the mean (which would flatter it).

Ties: ranx orders equal scores arbitrarily, so every run is first put in a strict order, score
descending then doc id ascending, with tied scores nudged down by one ulp each (``strict_ranking``).
The same order is written to run files, so any toolkit reading them reproduces our numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def strict_ranking(results: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` best first, ties broken by doc id, scores made strictly decreasing."""
    ranked = sorted(((d, float(s)) for d, s in results.items()), key=lambda x: (-x[1], x[0]))
    out: list[tuple[str, float]] = []
    prev = math.inf
    for doc_id, score in ranked:
        if score >= prev:
            score = math.nextafter(prev, -math.inf)
        out.append((doc_id, score))
        prev = score
    return out


def _positive(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for qid, rel in qrels.items():
        pos = {d: int(g) for d, g in rel.items() if g > 0}
        if pos:
            out[qid] = pos
    return out


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Iterable[str] = DEFAULT_METRICS,
    per_query: bool = False,
) -> dict:
    """Mean of each metric over the judged queries, plus ``num_queries`` (and ``per_query`` if asked)."""
    from ranx import Qrels, Run, evaluate

    metrics = list(metrics)
    judged_all = [q for q, rel in qrels.items() if rel]
    judged = _positive(qrels)  # ranx needs at least one relevant doc; the rest score 0 by definition
    answered = {q: dict(strict_ranking(run[q])) for q in sorted(judged) if run.get(q)}
    scores: dict[str, dict[str, float]] = {m: {q: 0.0 for q in judged_all} for m in metrics}
    if answered:
        ranx_run = Run(answered)
        with warnings.catch_warnings():  # ranx hashes doc ids to uint64 and numba warns about the cast
            warnings.filterwarnings("ignore", message="unsafe cast from uint64")
            evaluate(Qrels({q: judged[q] for q in answered}), ranx_run, metrics, threads=1)
        for m in metrics:
            scores[m].update({q: float(v) for q, v in ranx_run.scores[m].items()})
    n = len(judged_all)
    out: dict = {m: (sum(scores[m].values()) / n if n else 0.0) for m in metrics}
    out["num_queries"] = n
    out["num_queries_with_relevant"] = len(judged)
    if per_query:
        out["per_query"] = scores
    return out


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str) -> Path:
    """``qid Q0 docid rank score tag`` lines, queries sorted, in ``strict_ranking`` order."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"run tag {tag!r} must be non-empty and contain no whitespace")
    bad = [x for x in run for x in (x, *run[x]) if not x or any(c.isspace() for c in x)]
    if bad:
        raise ValueError(f"TREC run ids must be non-empty without whitespace, got {bad[0]!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for qid in sorted(run):
            for rank, (doc_id, score) in enumerate(strict_ranking(run[qid]), 1):
                f.write(f"{qid} Q0 {doc_id} {rank} {score!r} {tag}\n")
    return path
