"""Category accuracy (IKEA.com): the share of the top-k results in the query's intended category.

A query's intended category is the most frequent category among its best-graded labelled products
(ties -> lowest category id); queries without one (no category on those products) are left out, and
so are documents without a category when counting. Only meaningful where the catalog has categories
(Best Buy, WANDS); Home Depot has none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from strata.evaluate.metrics import strict_ranking


def intended_categories(
    qrels: Mapping[str, Mapping[str, int]], doc_category: Mapping[str, str | None]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for qid, rel in qrels.items():
        pos = {d: g for d, g in rel.items() if g > 0}
        if not pos:
            continue
        best = max(pos.values())
        cats = Counter(doc_category[d] for d, g in pos.items() if g == best and doc_category.get(d))
        if cats:
            top = max(cats.values())
            out[qid] = min(c for c, n in cats.items() if n == top)
    return out


def category_accuracy(
    run: Mapping[str, Mapping[str, float]],
    query_category: Mapping[str, str],
    doc_category: Mapping[str, str | None],
    k: int = 10,
) -> dict:
    """Mean over queries with an intended category of (top-k docs in it / top-k docs with a category)."""
    per_query: dict[str, float] = {}
    for qid, cat in query_category.items():
        top = [d for d, _ in strict_ranking(run.get(qid, {}))[:k]]
        cats = [doc_category.get(d) for d in top]
        known = [c for c in cats if c]
        per_query[qid] = (sum(c == cat for c in known) / len(known)) if known else 0.0
    n = len(per_query)
    return {
        f"category_accuracy@{k}": (sum(per_query.values()) / n) if n else None,
        "num_queries": n,
        "per_query": per_query,
    }
