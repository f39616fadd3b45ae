"""evaluate_beir on a tiny BEIR folder: sane rankings, and numbers any toolkit can re-derive."""

from __future__ import annotations

from pathlib import Path

import pytest
from ranx import Qrels, Run, evaluate

from strata.embed.config import EmbedConfig
from strata.evaluate.beir_eval import evaluate_beir, sample_queries
from strata.evaluate.metrics import DEFAULT_METRICS
from strata.evaluate.retrievers import make_retriever
from strata.sources.beir import BeirDataset, read_beir, write_beir

CORPUS = {
    "d1": ("Cordless Drill", "18V lithium-ion cordless drill driver kit with battery"),
    "d2": ("Garden Hose", "50 ft expandable garden hose with spray nozzle"),
    "d3": ("Paint Roller", "9 in. paint roller cover for smooth surfaces"),
    "d4": ("LED Light Bulb", "60W equivalent soft white LED light bulb, 4 pack"),
    "d5": ("Toilet Seat", "round closed front plastic toilet seat in white"),
    "d6": ("Ceiling Fan", "52 in. indoor ceiling fan with light kit and remote"),
    "d7": ("Drill Bit Set", "titanium drill bit set, 21 pieces"),
}
QUERIES = {"q1": "cordless drill", "q2": "garden hose", "q3": "led bulbs", "q4": "toilet seat round",
           "q5": "ceiling fan"}
QRELS = {
    "q1": {"d1": 2, "d7": 1, "d6": 0},
    "q2": {"d2": 2},
    "q3": {"d4": 2, "d6": 1},
    "q4": {"d5": 2},
    "q5": {"d6": 2, "d4": 0},
}
BEST = {"q1": "d1", "q2": "d2", "q3": "d4", "q4": "d5", "q5": "d6"}
CFG = EmbedConfig(batch_size=8, max_seq_length=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = BeirDataset(
        corpus={d: {"title": t, "text": x} for d, (t, x) in CORPUS.items()},
        queries=QUERIES,
        qrels=QRELS,
        split="dev",
        name="tiny",
    )
    return write_beir(ds, tmp_path_factory.mktemp("beir") / "tiny")


@pytest.mark.parametrize("name", ["bm25", "baseline"])
def test_obviously_right_doc_ranks_first(folder: Path, name: str) -> None:
    ds = read_beir(folder)
    retriever = make_retriever(name, CFG)
    retriever.index(list(ds.corpus), [ds.doc_text(d) for d in ds.corpus])
    run = retriever.search(ds.queries, k=100)
    for qid, best in BEST.items():
        assert max(run[qid], key=run[qid].get) == best, (name, qid, run[qid])
        assert all(isinstance(s, float) for s in run[qid].values())


def test_scores_match_an_independent_ranx_run_on_the_written_files(folder: Path, tmp_path: Path) -> None:
    ds = read_beir(folder)
    res = evaluate_beir(ds, ["bm25", "baseline"], k=100, embed_cfg=CFG, runs_out=tmp_path)
    assert res["dataset"] == "tiny" and res["split"] == "dev" and res["num_docs"] == len(CORPUS)
    qrels = Qrels({q: {d: g for d, g in rel.items() if g > 0} for q, rel in ds.qrels.items()})
    for name in ("bm25", "baseline"):
        got = res["retrievers"][name]
        assert got["num_queries"] == 5
        assert got["mrr@10"] == pytest.approx(1.0)  # the right doc is first for every query
        assert set(got["seconds"]) == {"index", "search"}
        run = Run.from_file(str(tmp_path / f"{name}.run"), kind="trec")
        assert sorted(run.keys()) == sorted(QUERIES)
        ranx_scores = evaluate(qrels, run, list(DEFAULT_METRICS))
        for m in DEFAULT_METRICS:
            assert got[m] == pytest.approx(float(ranx_scores[m]), abs=1e-6), (name, m)
    assert res["retrievers"]["baseline"]["model_id"].startswith("all-MiniLM-L6-v2@")
    assert res["retrievers"]["bm25"]["model_id"].startswith("bm25s@")


def test_max_queries_is_a_stable_sample() -> None:
    queries = {f"q{i}": f"text {i}" for i in range(50)}
    first = sample_queries(queries, 10)
    assert len(first) == 10 and first == sample_queries(dict(reversed(queries.items())), 10)
    assert list(first) != [f"q{i}" for i in range(10)]  # a hash sample, not the first ids
    assert sample_queries(queries, None) == dict(sorted(queries.items()))
    # the same sample as the hand-written sha1 sort it was before strata.text.stable_hash
    import hashlib

    by_hash = sorted(queries, key=lambda q: (hashlib.sha1(q.encode("utf-8")).hexdigest(), q))
    assert list(first) == sorted(by_hash[:10])
