import numpy as np
import pandas as pd

from strata.mine.ann import CatalogSpace, ann_candidates
from strata.mine.config import MineConfig


def _space(n=300, q=20, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 16)).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    qs = p[:q] + 0.05 * rng.normal(size=(q, 16)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    return CatalogSpace("c", [f"p{i}" for i in range(n)], p, [f"q{i}" for i in range(q)], qs)


def _seeds(q=20):
    return pd.DataFrame({"source": "s", "catalog": "c", "query": [f"q{i}" for i in range(q)],
                         "query_norm": [f"q{i}" for i in range(q)], "product_id": [f"p{i}" for i in range(q)],
                         "grade": 2})


def test_window_excludes_labelled_pairs_and_respects_ranks():
    cands, stats = ann_candidates(_space(), _seeds(), MineConfig(n_ann=4, rank_min=1, rank_max=10, index="flat"))
    assert stats["index"] == "IndexFlatIP" and "recall_at_rank_max" not in stats
    assert (cands.groupby("query_norm").size() <= 4).all() and cands["rank"].between(1, 9).all()
    labelled = set(zip(_seeds()["query_norm"], _seeds()["product_id"]))
    assert not labelled & set(zip(cands["query_norm"], cands["product_id"]))


def test_hnsw_reports_recall_against_exact():
    _, stats = ann_candidates(_space(), _seeds(), MineConfig(n_ann=3, rank_max=10, index="hnsw", recall_sample=10))
    assert "HNSW" in stats["index"] and 0.8 <= stats["recall_at_rank_max"] <= 1.0
