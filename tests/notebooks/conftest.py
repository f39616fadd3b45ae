"""One small real-data lakehouse + evaluation run shared by every notebook test (session scope).

Built in this process on the shared embedded engines: the demo pipeline on a slice of the real data
(Home Depot labels + catalog, Google taxonomy, Best Buy click log), the feature tables (query_stats,
engagement), a tiny distilled judge trained on the slice's own train-split labels, its judgments of a few
hundred labelled pairs, and the engagement audit. The notebooks then read it all from their own kernels.
"""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def notebook_inputs(data_root, engines, tmp_path_factory) -> dict:
    """Parameters every notebook may take: ``lakehouse``, ``run_dir`` (a notebook reads those it declares).
    Notebooks 03/04 add theirs here (e.g. a mining or training output folder)."""
    from strata.config import load_config
    from strata.features.job import run_features
    from strata.judge.audit import run_audit
    from strata.judge.backends import JudgeConfig
    from strata.judge.distilled import load_pairs, train_distilled
    from strata.judge.job import read_candidates, run_judging
    from strata.pipeline.run import lakehouse_for, run_pipeline

    cfg = load_config(
        "demo",
        overrides=[
            f"data.root={data_root}",
            "data.sources=[{name: homedepot, path: homedepot/train.csv.gz, limit: 3000},"
            " {name: google-taxonomy, path: google-taxonomy/taxonomy-with-ids.en-US.txt, limit: 300},"
            " {name: bestbuy-small, path: bestbuy-small, limit: 1500}]",
            "eval.max_queries=40",
            "embed.batch_size=64",
            "embed.cache_dir=null",
        ],
    )
    run_dir = tmp_path_factory.mktemp("nb-runs") / "demo-nb"
    res = run_pipeline(cfg, run_dir, engines=engines)
    lh = lakehouse_for(cfg, res.run_dir)
    run_features(engines.spark, lh, "nb-features")

    pairs = load_pairs(lh)
    judge_dir = tmp_path_factory.mktemp("nb-judge") / "tiny"
    train_distilled(pairs[pairs["split"] == "train"], judge_dir, name="nb-tiny-judge", layers=1, batch_size=16,
                    max_pairs=128, lr=3e-4, max_length=32, threads=1)
    # 200 human-labelled pairs (calibration) + the most clicked Best Buy (query, product) pairs of the click
    # log (no human grade, but engagement: what the audit compares judgments with)
    labelled = pairs.head(200)[["source", "query", "query_norm", "product_id", "product_text"]]
    eng = lh.read_arrow("query_product_engagement").to_pandas()
    products = lh.read_arrow("products", columns=["source", "product_id", "title", "description"]).to_pandas()
    clicked = eng.sort_values(["clicks", "query_norm"], ascending=[False, True]).head(120).merge(
        products[products["source"] == "bestbuy"].drop(columns="source"), on="product_id")
    clicked = clicked.assign(query=clicked["query_norm"])[["source", "query", "query_norm", "product_id", "title",
                                                           "description"]]
    run_judging(engines, lh, pd.concat([read_candidates(labelled), read_candidates(clicked)], ignore_index=True),
                JudgeConfig(backend="distilled", model=str(judge_dir), batch_size=64, chunk_rows=4096),
                "nb-judge", use_ray=False)
    run_audit(engines, lh, run_id="nb-audit")
    return {"lakehouse": str(lh.root), "run_dir": str(res.run_dir)}
