"""Click-log dev set (query -> clicked products, graded by clicks) and the log-derived slice fallback."""

import pandas as pd

from strata.evaluate.devset import query_id
from strata.evaluate.engagement_devset import engagement_devset, in_dev, log_query_stats


def _events():
    rows = []
    for q, n_search, clicks in (("xbox", 6, ["p1", "p1", "p2"]), ("fifa 11", 3, ["p2"]), ("tv mount", 2, []),
                                ("ghost", 1, ["p9"])):
        rows += [{"event_type": "search", "query_norm": q, "product_id": None}] * n_search
        rows += [{"event_type": "click", "query_norm": q, "product_id": p} for p in clicks]
    return pd.DataFrame(rows)


def test_engagement_devset_grades_and_categories():
    products = pd.DataFrame({"product_id": ["p1", "p2", "p3"], "title": ["Xbox 360", "FIFA 11", "TV Mount"],
                             "category_id": ["consoles", "games", None]})
    ds, cats = engagement_devset(_events(), products, dev_fraction=1.0)
    assert ds.qrels == {query_id("xbox"): {"p1": 2, "p2": 1}, query_id("fifa 11"): {"p2": 1}}
    assert ds.queries[query_id("xbox")] == "xbox"  # 'ghost' clicked a product outside the catalog
    assert set(ds.corpus) == {"p1", "p2", "p3"} and cats == {"p1": "consoles", "p2": "games"}
    half, _ = engagement_devset(_events(), products, dev_fraction=0.0)
    assert half.qrels == {}


def test_log_query_stats_segments_and_zero_click():
    st = log_query_stats(_events())
    assert st["xbox"]["segment"] == "head" and st["ghost"]["segment"] == "tail"
    assert st["tv mount"]["zero_click_rate"] == 1.0 and st["xbox"]["zero_click_rate"] == 0.5


def test_in_dev_keeps_the_queries_it_always_had():
    """``in_dev`` through ``strata.text.stable_draw`` gives the old hand-written sha1 draw's answer."""
    import hashlib

    def old_in_dev(query_norm, dev_fraction):
        h = int(hashlib.sha1(("dev:" + query_norm).encode("utf-8")).hexdigest()[:8], 16)
        return h / 0xFFFFFFFF < dev_fraction

    qs = ["xbox", "fifa 11", "tv mount", "ghost", ""] + [f"query {i}" for i in range(500)]
    for frac in (0.0, 0.2, 0.5, 1.0):
        assert [in_dev(q, frac) for q in qs] == [old_in_dev(q, frac) for q in qs]
    assert 50 < sum(in_dev(q, 0.2) for q in qs) < 150
