"""One small real-data lakehouse + evaluation run shared by every notebook test (session scope).

Built in this process on the shared embedded engines: the demo pipeline on a slice of the real data
(Home Depot labels + catalog, Google taxonomy, Best Buy click log), the feature tables (query_stats,
engagement), a tiny distilled judge trained on the slice's own train-split labels, its judgments of a few
hundred labelled pairs, and the engagement audit. Then, for notebooks 03 and 04: mining into
``training_examples`` (40 seed queries per catalog, no judge, mined with a 1-layer MiniLM) and a tiny
two-stage training run on those examples (a few steps each, MLflow file store in the run folder), plus a
benchmark result file in ``bench/bench_train.py``'s layout with made-up numbers (the real one may not exist).
The notebooks then read it all from their own kernels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def notebook_inputs(data_root, engines, tmp_path_factory) -> dict:
    """Parameters every notebook may take: ``lakehouse``, ``run_dir``, ``train_dir``, ``bench_json`` (a
    notebook reads those it declares)."""
    from strata.config import load_config
    from strata.features.job import run_features
    from strata.judge.audit import run_audit
    from strata.judge.config import JudgeConfig, JudgeTrainConfig
    from strata.judge.job import read_candidates, run_judging
    from strata.judge.pairs import load_pairs
    from strata.judge.trainer import train_distilled
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
            # this fixture runs features, mining and a tiny training itself, with its own small settings
            "pipeline.features=false", "pipeline.judge=false", "pipeline.mine=false", "pipeline.train=false",
        ],
    )
    run_dir = tmp_path_factory.mktemp("nb-runs") / "demo-nb"
    res = run_pipeline(cfg, run_dir, engines=engines)
    lh = lakehouse_for(cfg, res.run_dir)
    run_features(engines.spark, lh, "nb-features")

    pairs = load_pairs(lh)
    judge_dir = tmp_path_factory.mktemp("nb-judge") / "tiny"
    train_distilled(pairs[pairs["split"] == "train"], judge_dir,
                    JudgeTrainConfig(name="nb-tiny-judge", layers=1, batch_size=16, max_pairs=128, lr=3e-4,
                                     max_length=32, threads=1))
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

    tiny = _tiny_st_model(tmp_path_factory.mktemp("nb-tiny-st") / "model")
    _mine(engines, lh, tiny)
    train_dir = _train(engines, lh, tiny, tmp_path_factory.mktemp("nb-train") / "run")
    bench_json = _bench_json(tmp_path_factory.mktemp("nb-bench") / "train.json", train_dir)
    return {"lakehouse": str(lh.root), "run_dir": str(res.run_dir), "train_dir": str(train_dir),
            "bench_json": str(bench_json)}


def _tiny_st_model(out: Path) -> str:
    """The packaged MiniLM cut to its first layer (as tests/train does): fast to embed and to train."""
    from sentence_transformers import SentenceTransformer

    from strata.embed.encoder import resolve_model

    m = SentenceTransformer(resolve_model("baseline"), device="cpu", local_files_only=True)
    enc = m[0].auto_model.encoder
    enc.layer = enc.layer[:1]
    m[0].auto_model.config.num_hidden_layers = 1
    m.save(str(out))
    return str(out)


def _mine(engines, lh, model: str) -> None:
    """``training_examples`` for notebook 03 (and the training run): 40 seed queries per catalog."""
    from strata.config_base import SplitConfig
    from strata.embed.config import EmbedConfig
    from strata.mine.config import MineConfig
    from strata.mine.job import run_mining

    cfg = MineConfig(model=model, max_queries=40, n_ann=3, recall_sample=20, max_per_query=20)
    run_mining(engines, lh, cfg, SplitConfig(), EmbedConfig(max_seq_length=32, batch_size=128, cache_dir=None),
               None, "nb", use_ray=False)


def _train(engines, lh, model: str, out: Path) -> Path:
    """A two-stage run for notebook 04 (3 + 2 steps, every step logged to MLflow under ``out/mlruns``)."""
    from strata.train.config import TrainConfig
    from strata.train.runner import train

    cfg = TrainConfig(max_seq_length=24, cpus_per_worker=1, threads=1, checkpoint_every=100, log_every=1,
                      spelling_rate=0.0, synthetic_queries=0,
                      stage1={"max_steps": 3, "queries_per_batch": 4, "lr": 5e-5},
                      stage2={"max_steps": 2, "queries_per_batch": 4})
    train(engines, lh, cfg, "both", out, init_model=model)
    return out


def _bench_json(path: Path, train_dir: Path) -> Path:
    """A ``bench/results/train.json`` in bench_train.py's layout; the quality numbers are made up (only the
    notebook's display of them is under test), the stages are the tiny run's."""
    quality = {"baseline": (0.30, 0.70, 0.35), "bm25": (0.25, 0.60, 0.30), "mnrl": (0.33, 0.75, 0.38),
               "stage1": (0.34, 0.76, 0.40), "stage1+2": (0.36, 0.78, 0.41)}
    q = {k: dict(zip(("ndcg@10", "recall@100", "mrr@10"), v)) for k, v in quality.items()}
    rel = {k: {f"vs_{b}": round(v["ndcg@10"] / q[b]["ndcg@10"] - 1, 4) for b in ("baseline", "bm25", "mnrl")}
           for k, v in q.items()}
    stages = json.loads((train_dir / "train.json").read_text())["stages"]
    path.write_text(json.dumps({"date": "test", "quality": q, "relative_ndcg10": rel, "strata": {"stages": stages},
                                "mnrl": {"steps": 5, "examples_per_s": 10.0, "seconds": 1.0}}, indent=2))
    return path
