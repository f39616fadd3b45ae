"""rerank:BASE: a base run's top K re-ordered by the judge (fused z-scores), the rest left in base order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from strata.embed.config import EmbedConfig
from strata.evaluate import beir_eval
from strata.evaluate.beir_eval import evaluate_beir
from strata.evaluate.metrics import strict_ranking
from strata.evaluate.rerank import RerankConfig, rerank_base, rerank_run
from strata.sources.beir import BeirDataset, write_beir

RUN = {"q": {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5}}
GRADES = {"a": 0.0, "b": 2.0, "c": 1.0, "d": 2.0, "e": 2.0}


def _scorer(calls):
    def score(queries, texts):
        calls.append(list(texts))
        return np.array([GRADES[t] for t in texts])
    return score


def _order(run):
    return [d for d, _ in strict_ranking(run["q"])]


def test_judge_order_reorders_only_the_top_k():
    calls = []
    out = rerank_run(RUN, {"q": "query"}, lambda d: d, _scorer(calls), k=3, alpha=None)
    assert calls == [["a", "b", "c"]]  # one call, the top 3 only
    assert _order(out) == ["b", "c", "a", "d", "e"]  # d and e (grade 2) stay below: outside the top 3


def test_fused_order_matches_hand_computed_z_scores():
    k, alpha = 4, 0.5
    out = rerank_run(RUN, {"q": "query"}, lambda d: d, _scorer([]), k=k, alpha=alpha)
    base = np.array([0.9, 0.8, 0.7, 0.6])
    g = np.array([0.0, 2.0, 1.0, 2.0])
    fused = (base - base.mean()) / base.std() + alpha * (g - g.mean()) / g.std()
    want = [d for _, d in sorted(zip(-fused, "abcd"))] + ["e"]
    assert _order(out) == want
    assert want[:2] == ["b", "a"]  # a's lead in the base run outweighs its grade 0 at alpha 0.5 only over c, d


def test_constant_judge_keeps_the_base_order_and_bad_scorer_fails():
    out = rerank_run(RUN, {"q": "query"}, lambda d: d, lambda q, t: np.ones(len(t)), k=5, alpha=1.0)
    assert _order(out) == list("abcde")
    with pytest.raises(ValueError, match="shape"):
        rerank_run(RUN, {"q": "query"}, lambda d: d, lambda q, t: np.ones(2), k=5, alpha=1.0)


def test_rerank_names():
    assert rerank_base("rerank:bm25") == "bm25"
    assert rerank_base("rerank:hybrid:bm25+/m") == "hybrid:bm25+/m"
    assert rerank_base("bm25") is None
    with pytest.raises(ValueError):
        rerank_base("rerank:")


CORPUS = {"d1": "cordless drill driver kit", "d2": "drill bit set titanium", "d3": "drill press stand",
          "d4": "garden hose reel", "d5": "hose nozzle", "d6": "expandable garden hose"}
QUERIES = {"q1": "drill", "q2": "garden hose"}
QRELS = {"q1": {"d3": 2, "d1": 0}, "q2": {"d6": 2, "d4": 1, "d5": 0}}


def _ds():
    return BeirDataset({d: {"title": t, "text": ""} for d, t in CORPUS.items()}, QUERIES, QRELS, "dev", "tiny")


def test_evaluate_beir_rerank_with_an_oracle_judge(monkeypatch):
    """An oracle judge (the qrels grade) must lift nDCG@10 over its base run; the base is computed once."""
    by_text = {(QUERIES[q], CORPUS[d]): g for q, r in QRELS.items() for d, g in r.items()}

    def oracle(cfg):
        def score(queries, texts):
            return np.array([by_text.get((q, t), 0) for q, t in zip(queries, texts)], dtype=float)
        score.judge_id = "oracle"
        return score

    monkeypatch.setattr(beir_eval, "judge_scorer", oracle)
    out = evaluate_beir(_ds(), ["bm25", "rerank:bm25"], k=10, embed_cfg=EmbedConfig(batch_size=8),
                        rerank=RerankConfig(judge="unused", k=3, alpha=None))
    r = out["retrievers"]
    assert r["rerank:bm25"]["ndcg@10"] > r["bm25"]["ndcg@10"]
    assert r["rerank:bm25"]["model_id"].startswith("rerank(bm25s@") and "oracle" in r["rerank:bm25"]["model_id"]
    with pytest.raises(ValueError, match="judge"):
        evaluate_beir(_ds(), ["rerank:bm25"], k=10, embed_cfg=EmbedConfig(batch_size=8))


def test_cli_rerank_with_a_real_tiny_judge(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "judge"))
    from judge_toys import synthetic_pairs

    from strata.judge.config import JudgeTrainConfig
    from strata.judge.trainer import train_distilled

    judge = tmp_path / "judge"
    train_distilled(synthetic_pairs(2), judge, JudgeTrainConfig(name="tiny-judge", layers=1, batch_size=16,
                                                                max_pairs=32, lr=3e-4, max_length=32, threads=1))
    write_beir(_ds(), tmp_path / "beir")
    cli = [sys.executable, "-c", "from strata.cli import main; main()", "eval", "--dataset", str(tmp_path / "beir"),
           "--split", "dev", "--model", "bm25", "--model", "rerank:bm25", "--out", str(tmp_path / "m.json")]
    r = subprocess.run([*cli, "--judge", str(judge), "--rerank-k", "3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "m.json").read_text())["retrievers"]
    assert "tiny-judge@" in m["rerank:bm25"]["model_id"] and "k=3" in m["rerank:bm25"]["model_id"]
    assert m["rerank:bm25"]["recall@100"] == m["bm25"]["recall@100"]  # re-ranking never changes the set
    r = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "--judge" in r.stdout + r.stderr
