"""A real-intent dev set from a click log (IKEA.com style): query -> clicked products, over the catalog.

For a search log with a catalog (Best Buy): every normalised query with at least one click on a catalog
product is a dev query; its clicked products are relevant, graded by clicks (>= ``exact_clicks`` -> 2,
fewer -> 1). There are no judged-irrelevant products (grade 0). A stable hash of the query keeps
``dev_fraction`` of the queries (the rest are left for training), so the same queries are dev in every
run. Products carry their category, so category accuracy can be measured.

``log_query_stats`` is a fallback for slicing when the features job's ``query_stats`` table is absent:
head/torso/tail by cumulative search volume (the most-searched queries covering the first 50 % of
searches are head, the next 30 % torso, the rest tail) and zero_click_rate = 1 - min(1, clicks/searches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.evaluate.devset import query_id
from strata.sources.beir import BeirDataset
from strata.text import stable_draw

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def in_dev(query_norm: str, dev_fraction: float) -> bool:
    """Whether the (already normalised) query is a dev query: sha1("dev:" + query), 4 bytes / 0xFFFFFFFF (its
    own salt, separator and scale, not ``split_of``'s: the engagement dev set keeps the queries it always had)."""
    return stable_draw(query_norm, "dev", sep=":", nbytes=4, scale=0xFFFFFFFF) < dev_fraction


def engagement_devset(
    events: "pd.DataFrame",
    products: "pd.DataFrame",
    *,
    name: str = "bestbuy-engagement-dev",
    dev_fraction: float = 0.2,
    exact_clicks: int = 2,
) -> tuple[BeirDataset, dict[str, str]]:
    """(BeirDataset, product category by id). ``events``: search_events rows (event_type, query_norm,
    product_id); ``products``: product_id, title, description?, category_id?."""
    clicks = events[(events["event_type"] == "click") & events["product_id"].notna()]
    clicks = clicks[clicks["query_norm"].notna() & (clicks["query_norm"].str.len() > 0)]
    catalog = set(products["product_id"].astype(str))
    counts = (
        clicks.assign(product_id=clicks["product_id"].astype(str))
        .query("product_id in @catalog")
        .groupby(["query_norm", "product_id"])
        .size()
    )
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for (qn, pid), n in counts.items():
        if not in_dev(qn, dev_fraction):
            continue
        qid = query_id(qn)
        queries[qid] = qn
        qrels.setdefault(qid, {})[pid] = 2 if n >= exact_clicks else 1
    desc = products["description"] if "description" in products else None
    corpus = {
        str(p): {"title": str(t or ""), "text": str(desc.iloc[i] or "") if desc is not None else ""}
        for i, (p, t) in enumerate(zip(products["product_id"], products["title"]))
    }
    cats = {}
    if "category_id" in products:
        cats = {str(p): str(c) for p, c in zip(products["product_id"], products["category_id"]) if c}
    ds = BeirDataset(corpus, queries, qrels, split="dev", name=name,
                     meta={"grades": f"clicks >= {exact_clicks} -> 2, else 1", "dev_fraction": dev_fraction})
    return ds, cats


def log_query_stats(events: "pd.DataFrame") -> dict[str, dict]:
    """{query_norm: {"segment", "zero_click_rate", "searches"}} from raw search/click events."""
    s = events[events["event_type"] == "search"].groupby("query_norm").size()
    c = events[events["event_type"] == "click"].groupby("query_norm").size()
    s = s.sort_values(ascending=False, kind="mergesort")
    total = float(s.sum()) or 1.0
    out: dict[str, dict] = {}
    cum = 0.0
    for qn, n in s.items():
        share_before = cum / total
        cum += n
        seg = "head" if share_before < 0.5 else ("torso" if share_before < 0.8 else "tail")
        clicks = int(c.get(qn, 0))
        out[qn] = {"segment": seg, "zero_click_rate": 1.0 - min(1.0, clicks / n), "searches": int(n)}
    return out
