"""evaluate_beir with a hybrid retriever and labelled-pair similarities kept from the dense index."""

import pytest

from strata.embed.config import EmbedConfig
from strata.evaluate.analysis import read_trec_run
from strata.evaluate.beir_eval import evaluate_beir
from strata.evaluate.separation import separation_from_sims
from strata.sources.beir import BeirDataset

CORPUS = {
    "d1": "cordless drill driver kit", "d2": "garden hose with spray nozzle", "d3": "paint roller cover",
    "d4": "led light bulb soft white", "d5": "round toilet seat", "d6": "ceiling fan with light kit",
    "d7": "titanium drill bit set",
}
QUERIES = {"q1": "cordless drill", "q2": "garden hose", "q3": "led bulbs", "q4": "ceiling fan"}
QRELS = {"q1": {"d1": 2, "d7": 1, "d6": 0}, "q2": {"d2": 2, "d3": 0}, "q3": {"d4": 2, "d6": 1},
         "q4": {"d6": 2, "d4": 0}}


def test_hybrid_and_pair_sims(tmp_path):
    ds = BeirDataset({d: {"title": t, "text": ""} for d, t in CORPUS.items()}, QUERIES, QRELS, "dev", "tiny")
    sims: dict = {}
    out = evaluate_beir(ds, ["bm25", "hybrid"], k=10, embed_cfg=EmbedConfig(batch_size=8, max_seq_length=32),
                        runs_out=tmp_path, pair_sims=sims)
    assert set(out["retrievers"]) == {"bm25", "hybrid"}  # the baseline component is run, not reported
    assert out["retrievers"]["hybrid"]["model_id"].startswith("rrf(bm25s@")
    assert out["retrievers"]["hybrid"]["ndcg@10"] > 0.5
    assert set(read_trec_run(tmp_path / "hybrid.run")) == set(QUERIES)
    assert set(sims) == {"baseline"} and sorted(sims["baseline"]) == [0, 1, 2]
    assert sum(len(v) for v in sims["baseline"].values()) == 9
    sep = separation_from_sims(sims["baseline"])
    assert sep["grades"]["2"]["mean"] > sep["grades"]["0"]["mean"]
    assert 0.5 < sep["auc"]["relevant>irrelevant"] <= 1.0
