"""The mining job end to end on a hand-made lakehouse (routes are hand-computable) — embedded Sail, no Ray."""

import pandas as pd
import pytest

from strata.config_base import SplitConfig
from strata.embed.config import EmbedConfig
from strata.mine.config import MineConfig
from strata.mine.inspect import query_examples
from strata.mine.job import run_mining
from strata.mine.report import mining_report
from strata.tables import Lakehouse


def _mine(engines, lh, **over):
    cfg = MineConfig(**{"absolute_margin": None, "n_sibling": 2, "n_attribute": 2, "n_cousin": 1, "n_random": 2,
                        "n_ann": 0, **over})
    return run_mining(engines, lh, cfg, SplitConfig(), EmbedConfig(max_seq_length=32), None, "t", use_ray=False)


def test_structured_routes_follow_taxonomy_and_attributes(engines, mine_lakehouse):
    lh = Lakehouse(mine_lakehouse)
    res = _mine(engines, lh)
    ex = lh.read_arrow("training_examples").to_pandas().set_index("product_id")
    assert set(ex["query_norm"]) == {"stainless steel microwave"}  # the dev query never seeds training
    assert ex.loc["p1", ["source", "grade"]].tolist() == ["human", 2]
    assert ex.loc["p8", ["source", "grade"]].tolist() == ["human", 0]
    # same category (microwaves), another colour than the query's "stainless steel"
    assert sorted(ex.index[ex["source"] == "attribute_flip"]) == ["p2", "p3"]
    assert sorted(ex.index[ex["source"] == "taxonomy_sibling"]) == ["p4", "p5"]  # ranges: sibling category
    assert list(ex.index[ex["source"] == "cousin"]) == ["p6"]
    assert list(ex.index[ex["source"] == "random"]) == ["p7"]  # p8 is already a labelled pair
    assert (ex.loc[ex["source"] != "human", "grade"] == 0).all()
    assert ex["score"].notna().all() and (ex["model_id"].str.startswith("all-MiniLM-L6-v2@")).all()
    assert res.by_source == {"attribute_flip": 2, "cousin": 1, "human": 2, "random": 1, "taxonomy_sibling": 2}


def test_ann_window_margin_and_same_table_twice(engines, mine_lakehouse):
    lh = Lakehouse(mine_lakehouse)
    cfg = dict(n_ann=3, rank_min=0, rank_max=6, absolute_margin=0.0, n_random=0, n_cousin=0)
    res = _mine(engines, lh, **cfg)
    first = lh.read_arrow("training_examples").to_pandas()
    ann = first[first["source"] == "ann"]
    assert 0 < len(ann) <= 3 and ann["rank"].between(0, 5).all()
    # absolute_margin=0: nothing kept may score above the query's best positive
    mined = first[~first["source"].isin(["human"])]
    assert (mined["score"] <= mined["positive_score"]).all()
    assert res.removed["candidates"] >= len(mined)
    _mine(engines, lh, **cfg)
    second = lh.read_arrow("training_examples").to_pandas()
    pd.testing.assert_frame_equal(first, second)
    rep = mining_report(lh)
    assert rep["overall"]["rows"] == len(first) and "human" in rep["overall"]["sources"]
    rows = query_examples(lh, "  STAINLESS steel Microwave ")
    assert rows.iloc[0]["product_id"] == "p1" and rows["title"].notna().all()


def test_no_seeds_is_a_clear_error(engines, tmp_path):
    from deltalake import write_deltalake

    from strata.tables import spec

    root = tmp_path / "empty"
    write_deltalake(str(root / "products"), spec("products").schema.empty_table())
    with pytest.raises(FileNotFoundError, match="no labels or query_product_engagement"):
        _mine(engines, Lakehouse(root))


@pytest.mark.parametrize("over", [dict(rank_min=10, rank_max=5), dict(index="ivf")])
def test_config_rejects_bad_windows(over):
    with pytest.raises(ValueError):
        MineConfig(**over)


def test_judged_mining_stages_candidate_text_in_spark(engines, mine_lakehouse, tmp_path, monkeypatch):
    """With a judge, the candidates reach the judging job as a Spark-staged parquet path (title/description
    joined there): the frame path (``read_candidates`` / ``missing_pairs``) is never used, every candidate is
    judged on its product's text, the verdicts land in ``training_examples`` and the staging folder is gone."""
    from strata.judge import job as judge_job
    from strata.judge.backends import load_judge
    from strata.judge.config import JudgeConfig, JudgeTrainConfig
    from strata.judge.trainer import train_distilled
    lh = Lakehouse(mine_lakehouse)
    titles = dict(lh.read_arrow("products").to_pandas()[["product_id", "title"]].itertuples(index=False))
    q = "stainless steel microwave"
    pairs = pd.DataFrame([dict(source="shop", query=q, query_norm=q, product_id=p, product_text=t,
                               grade=2 if "Microwave" in t else 0, split="train") for p, t in titles.items()] * 4)
    train_distilled(pairs, tmp_path / "judge", JudgeTrainConfig(name="mine-judge", layers=1, batch_size=8,
                                                                max_pairs=32, lr=3e-4, max_length=32, threads=1))
    cfg = JudgeConfig(backend="distilled", model=str(tmp_path / "judge"), batch_size=4, chunk_rows=4)

    def driver_path(*a, **k):
        raise AssertionError("mining candidates went through the judge's frame path")

    monkeypatch.setattr(judge_job, "read_candidates", driver_path)
    monkeypatch.setattr(judge_job, "missing_pairs", driver_path)
    mcfg = MineConfig(absolute_margin=None, n_sibling=2, n_attribute=2, n_cousin=1, n_random=2, n_ann=0)
    res = run_mining(engines, lh, mcfg, SplitConfig(), EmbedConfig(max_seq_length=32), cfg, "tj", use_ray=False)

    judged = lh.read_arrow("judgments").to_pandas().set_index("product_id")
    assert sorted(judged.index) == ["p2", "p3", "p4", "p5", "p6", "p7"]  # the structured candidates, once each
    assert (judged["status"] == "ok").all() and judged["query_norm"].eq("stainless steel microwave").all()
    # each verdict was made on the product's own text, as the judge gives it directly
    judge = load_judge(cfg, threads=1)
    direct = judge.judge([judge_job.JudgeInput(query="Stainless Steel Microwave", product_text=titles[p])
                          for p in judged.index])
    assert [o.grade for o in direct] == judged["grade"].tolist()
    assert judged["p2"].to_numpy() == pytest.approx([o.probs[2] for o in direct], abs=1e-5)
    ex = lh.read_arrow("training_examples").to_pandas()
    mined = ex[ex["source"] != "human"]
    assert mined["judge_grade"].notna().all() and len(mined) + res.removed.get("unjudged", 0) >= 1
    assert not (lh.root / "_staging").exists()


def test_query_buckets_give_the_same_table_one_bucket_at_a_time(engines, many_queries_lakehouse, monkeypatch):
    """``bucket_queries`` bounds what the driver holds: mining in several (catalog, query-hash bucket) passes
    writes exactly the table one pass writes, and no pass sees more than its bucket's queries."""
    from strata.mine import job

    lh = Lakehouse(many_queries_lakehouse)
    cfg = dict(n_ann=3, rank_min=0, rank_max=6, absolute_margin=0.0, n_random=1, max_per_query=6)
    one = _mine(engines, lh, **cfg)
    whole = lh.read_arrow("training_examples").to_pandas()

    seen = []
    real = job.ann_candidates

    def spy(space, seeds, mcfg, index=None):
        seen.append((space.catalog, seeds["query_norm"].nunique(), index is not None))
        return real(space, seeds, mcfg, index)

    monkeypatch.setattr(job, "ann_candidates", spy)
    many = _mine(engines, lh, bucket_queries=4, **cfg)
    parts = lh.read_arrow("training_examples").to_pandas()
    key = ["catalog", "query_norm", "product_id"]
    # Scores to float32 rounding: a bucket's queries are embedded in their own batch (other shapes).
    pd.testing.assert_frame_equal(whole.sort_values(key).reset_index(drop=True),
                                  parts.sort_values(key).reset_index(drop=True), check_exact=False, atol=1e-6)
    assert (one.rows, one.by_source, one.removed) == (many.rows, many.by_source, many.removed)
    assert {"human", "ann", "random"} <= set(one.by_source) and one.removed["per_query_cap"] > 0
    assert len(seen) > 2 and max(n for _, n, _ in seen) < 14  # 14 queries per catalog, 4 buckets
    assert sum(n for _, n, _ in seen) == 28 and all(prebuilt for *_, prebuilt in seen)
    assert [s["catalog"] for s in many.index] == ["shop", "shop2"]  # one index per catalog
    assert not (lh.root / "_staging").exists()


def test_ivfpq_mining_keeps_vectors_on_disk_and_scores_exactly(engines, many_queries_lakehouse, monkeypatch):
    """``index=ivfpq``: the catalog's vectors are a disk memmap (never an in-RAM array), the index holds PQ codes
    with its recall vs exact reported, and every score is the exact cosine (the flat run's, for the same pair)."""
    import numpy as np

    from strata.mine import job

    lh = Lakehouse(many_queries_lakehouse)
    cfg = dict(n_ann=3, rank_min=0, rank_max=6, absolute_margin=None, n_random=1, max_per_query=40)
    _mine(engines, lh, **cfg)
    flat = lh.read_arrow("training_examples").to_pandas()

    spaces = []
    real = job.CatalogSpace

    def spy(catalog, pids, pvecs, *a):
        spaces.append(pvecs)
        return real(catalog, pids, pvecs, *a)

    monkeypatch.setattr(job, "CatalogSpace", spy)
    res = _mine(engines, lh, index="ivfpq", **cfg)
    ivf = lh.read_arrow("training_examples").to_pandas()
    assert len(spaces) == 2 and all(isinstance(v, np.memmap) for v in spaces)
    assert [s["index"] for s in res.index] == ["IndexIVFPQ", "IndexIVFPQ"]
    assert all(0 <= s["recall_at_rank_max"] <= 1 for s in res.index)
    key = ["catalog", "query_norm", "product_id"]
    both = flat.merge(ivf, on=key, suffixes=("_flat", "_ivf"))
    assert len(both) >= len(ivf[ivf["source"] != "ann"])  # every non-ANN row is in both runs
    np.testing.assert_allclose(both["score_ivf"], both["score_flat"], atol=1e-6)
    np.testing.assert_allclose(both["positive_score_ivf"], both["positive_score_flat"], atol=1e-6)
    assert not (lh.root / "_staging").exists()
